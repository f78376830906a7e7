// SPDX-License-Identifier: Apache-2.0
/*
 * serial-loopback TTY: checks an 8250 port end to end on mmiolab's 16550 model
 * (models/uart16550.toml):
 *   - the 8250 core identified it as a 16550A with a 16-byte FIFO (TIOCGSERIAL: what its
 *     autoconfiguration's scratch, IER, loopback and FIFO tests concluded);
 *   - with the modem control register's LOOP bit set (TIOCMSET TIOCM_LOOP), bytes written
 *     to the tty come back from it, in order, through THR, the receive FIFO, the RX
 *     interrupt and RBR.
 * Prints what it checks on stdout and each failure on stderr; exit status 0 only if all
 * passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/serial.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define CHUNK 8

/* <asm-generic/termios.h> has it, glibc's <termios.h> does not, and the two clash */
#ifndef TIOCM_LOOP
#define TIOCM_LOOP 0x8000
#endif

static const char message[] = "mmiolab 16550 loopback: 0123456789abcdef";

/* read_exactly: N bytes from FD into BUF, waiting at most 5 s for each. */
static int read_exactly(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0) {
			fprintf(stderr, "serial-loopback: only %zu of %zu bytes came back within 5 s\n",
				got, n);
			return -1;
		}
		r = read(fd, buf + got, n - got);
		if (r < 0 && errno != EINTR && errno != EAGAIN) {
			fprintf(stderr, "serial-loopback: read: %s\n", strerror(errno));
			return -1;
		}
		if (r > 0)
			got += (size_t)r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char back[sizeof(message)];
	struct serial_struct ser;
	struct termios tio;
	size_t off, n;
	int fd, bits, failures = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: serial-loopback /dev/ttySN\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "serial-loopback: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (ioctl(fd, TIOCGSERIAL, &ser) < 0) {
		fprintf(stderr, "serial-loopback: TIOCGSERIAL: %s\n", strerror(errno));
		return 1;
	}
	printf("serial-loopback: %s: type %d, FIFO %d bytes, port %#x, iomem %p, irq %d\n",
	       argv[1], ser.type, ser.xmit_fifo_size, ser.port, (void *)ser.iomem_base, ser.irq);
	if (ser.type != PORT_16550A) {
		fprintf(stderr, "serial-loopback: type %d, want %d (16550A)\n", ser.type, PORT_16550A);
		failures++;
	}
	if (ser.xmit_fifo_size != 16) {
		fprintf(stderr, "serial-loopback: FIFO %d bytes, want 16\n", ser.xmit_fifo_size);
		failures++;
	}

	if (tcgetattr(fd, &tio) < 0) {
		fprintf(stderr, "serial-loopback: tcgetattr: %s\n", strerror(errno));
		return 1;
	}
	cfmakeraw(&tio);
	cfsetspeed(&tio, B115200);
	tio.c_cflag |= CLOCAL | CREAD;
	if (tcsetattr(fd, TCSANOW, &tio) < 0) {
		fprintf(stderr, "serial-loopback: tcsetattr: %s\n", strerror(errno));
		return 1;
	}
	bits = TIOCM_LOOP;
	if (ioctl(fd, TIOCMBIS, &bits) < 0) {
		fprintf(stderr, "serial-loopback: setting TIOCM_LOOP: %s\n", strerror(errno));
		return 1;
	}
	tcflush(fd, TCIOFLUSH);
	/* a chunk at a time: the receive FIFO is 16 deep, and the tty layer may hand the
	 * transmitter more than that at once */
	for (off = 0; off < sizeof(message) - 1; off += n) {
		n = sizeof(message) - 1 - off < CHUNK ? sizeof(message) - 1 - off : CHUNK;
		if (write(fd, message + off, n) != (ssize_t)n) {
			fprintf(stderr, "serial-loopback: write: %s\n", strerror(errno));
			return 1;
		}
		if (read_exactly(fd, back + off, n) < 0)
			return 1;
	}
	back[sizeof(message) - 1] = 0;
	if (strcmp(back, message) != 0) {
		fprintf(stderr, "serial-loopback: sent \"%s\", got back \"%s\"\n", message, back);
		failures++;
	} else {
		printf("serial-loopback: %zu bytes came back in order\n", sizeof(message) - 1);
	}
	ioctl(fd, TIOCMBIC, &bits);
	close(fd);
	return failures ? 1 : 0;
}
