// SPDX-License-Identifier: Apache-2.0
/*
 * host-tsc-khz: print the host's TSC frequency in kHz, measured against
 * CLOCK_MONOTONIC_RAW over 200 ms. Under QEMU TCG the guest's TSC runs at
 * the host's rate, so run-l1.sh passes this to the L1 kernel as
 * tsc_early_khz: its own calibration against the emulated PIT fails when the
 * host is busy, leaving tsc_khz = 0, and then L1's KVM never enters a guest
 * (kvm_guest_time_update() keeps re-requesting a clock update).
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

/* A (TSC, ns) pair taken close together: the read with the smallest TSC window wins. */
static void sample(uint64_t *tsc, double *ns)
{
	uint64_t best = UINT64_MAX;
	int i;

	for (i = 0; i < 20; i++) {
		struct timespec t;
		uint64_t a = __rdtsc(), b;

		clock_gettime(CLOCK_MONOTONIC_RAW, &t);
		b = __rdtsc();
		if (b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*ns = t.tv_sec * 1e9 + t.tv_nsec;
		}
	}
}

int main(void)
{
	struct timespec wait = { 0, 200 * 1000 * 1000 };
	uint64_t c0, c1;
	double t0, t1;

	sample(&c0, &t0);
	nanosleep(&wait, NULL);
	sample(&c1, &t1);
	printf("%.0f\n", (double)(c1 - c0) / (t1 - t0) * 1e6);
	return 0;
}
