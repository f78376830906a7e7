/* The legal accesses to the registers firmware/asm/checks.S misuses (machine
 * tests/machines/checks.toml): tests/baremetal.rs expects no finding from --check, and
 * uses its trace for the golden-trace tests (TICKS is volatile). Exits 0, or the number of
 * the first value that differs from the description's. */
#include "mmiolab.h"

#define CHK   0xd0000000
#define CHK2  0xd0001000

    .code64
    .globl _start
_start:
    mov $CHK, %edi
    mov 0x00(%rdi), %eax        /* ID reads its reset value */
    mov $0x1234, %ebx
    expect_eq 1
    movl $5, 0x04(%rdi)         /* KEY: one write */
    movl $5, 0x04(%rdi)         /* the same value again changes nothing: no finding */
    mov 0x04(%rdi), %eax
    mov $5, %ebx
    expect_eq 2
    movl $0xb, 0x08(%rdi)       /* CFG: EN and MODE only, reserved bits as they read */
    mov 0x08(%rdi), %eax
    mov $0xb, %ebx
    expect_eq 3
    movl $0x41, 0x0c(%rdi)      /* TXDATA: written, never read */
    movl $0x77, 0x10(%rdi)      /* WIDE: 32-bit accesses */
    mov 0x10(%rdi), %eax
    mov $0x77, %ebx
    expect_eq 4
    movl $1, 0x18(%rdi)         /* DATA: two pushes, two pops */
    movl $2, 0x18(%rdi)
    mov 0x18(%rdi), %eax
    mov $1, %ebx
    expect_eq 5
    mov 0x18(%rdi), %eax
    mov $2, %ebx
    expect_eq 6
    movl $9, 0x1c(%rdi)         /* LDATA: one push, one pop */
    mov 0x1c(%rdi), %eax
    mov $9, %ebx
    expect_eq 7
    movl $0x100, 0x20(%rdi)     /* TICKS */
    mov 0x20(%rdi), %eax
    mov $0x100, %ebx
    expect_eq 8
    mov $CHK2, %edi
    movl $3, 0x18(%rdi)         /* chk2 DATA: a push and a pop */
    mov 0x18(%rdi), %eax
    mov $3, %ebx
    expect_eq 9
    exit 0
fail_1: exit 1
fail_2: exit 2
fail_3: exit 3
fail_4: exit 4
fail_5: exit 5
fail_6: exit 6
fail_7: exit 7
fail_8: exit 8
fail_9: exit 9
