/* The bundled demo: greets on COM1, then probes and pokes the register file over MMIO and
 * I/O ports (every access is trapped; run with --trace to see them), reports on COM1 and
 * exits through the test-exit device with 0 if all went as expected. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    lea hello(%rip), %rsi
    call puts

    mov $REGS_MMIO, %edi
    mov (%rdi), %eax            /* ID register */
    cmp $REGFILE_ID, %eax
    jne bad
    movl $0xcafef00d, 0x100(%rdi)
    mov 0x100(%rdi), %eax
    cmp $0xcafef00d, %eax
    jne bad
    lea mmio_ok(%rip), %rsi
    call puts

    mov $REGS_PORT + 0xc, %dx
    mov $0x42, %al
    outb %al, %dx
    xor %eax, %eax
    inb %dx, %al
    cmp $0x42, %al
    jne bad
    lea pio_ok(%rip), %rsi
    call puts

    mov $UNMAPPED, %edi
    mov (%rdi), %eax            /* nothing there: reads all ones */
    cmp $0xffffffff, %eax
    jne bad
    lea unmapped_ok(%rip), %rsi
    call puts
    exit 0
bad:
    lea failed(%rip), %rsi
    call puts
    exit 1

/* Writes the NUL-terminated string at %rsi to COM1. */
puts:
    mov $COM1, %dx
1:  lodsb
    test %al, %al
    jz 2f
    outb %al, %dx
    jmp 1b
2:  ret

    .section .rodata
hello:       .asciz "mmiolab demo: bare-metal guest running in long mode\n"
mmio_ok:     .asciz "  MMIO: regfile ID read 0x4d4d494f, scratch register round trip ok\n"
pio_ok:      .asciz "  PIO:  port 0x30c round trip ok\n"
unmapped_ok: .asciz "  unmapped MMIO read returned all ones\n"
failed:      .asciz "  unexpected value: the demo failed\n"
