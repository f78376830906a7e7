/* Shared by the bundled programs: the built-in devices and the bare-metal test machine.
 * The machine's addresses are generated from tests/machines/baremetal.toml into
 * mmiolab-machine.h (`cargo xtask headers` regenerates it; `cargo xtask test` fails while
 * it is stale). */
#include "mmiolab-machine.h"

#define EXIT_PORT   0xf4        /* test-exit device: a write ends the VM with that status */
#define COM1        0x3f8       /* 16550 UART */
#define REGS_MMIO   MMIOLAB_MMIO_REGS_BASE      /* regfile "mmio-regs", 0x1000 bytes */
#define REGS_PORT   MMIOLAB_PORT_REGS_PIO_BASE  /* regfile "port-regs", 16 ports (storage at 0xc-0xf) */
#define SEQ_PORT    MMIOLAB_SEQ_PIO_BASE        /* counter "seq": each read returns the next count */
#define UNMAPPED    0xd0100000  /* nothing is mapped here (the end of the platform bus) */
#define SYSCTL_BASE 0xfebfe000  /* system controller: 32-bit write of 1 at offset 0 powers off */
#define PVPANIC_BASE 0xfebff000 /* pvpanic-mmio: writing bit 0 reports a guest panic */
#define REGFILE_ID  0x4d4d494f

/* Ends the VM with status \code (a constant). */
.macro exit code
    mov $\code, %eax
    out %al, $EXIT_PORT
1:  jmp 1b
.endm

/* Jumps to fail_N (which exits with N) when %rax differs from %rbx. */
.macro expect_eq n
    cmp %rbx, %rax
    jne fail_\n
.endm
