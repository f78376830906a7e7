/* MMIO stores then loads at widths 1, 2, 4 and 8 on the register file; exits 0 when every
 * value read back matches, N for the first mismatch. Values are distinct so a trace shows
 * which access is which. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $REGS_MMIO, %edi
    movb $0xa1, 0x10(%rdi)
    movw $0xb2c3, 0x12(%rdi)
    movl $0xd4e5f607, 0x14(%rdi)
    mov $0x0123456789abcdef, %rax
    mov %rax, 0x18(%rdi)

    movzbq 0x10(%rdi), %rax
    mov $0xa1, %ebx
    expect_eq 1
    movzwq 0x12(%rdi), %rax
    mov $0xb2c3, %ebx
    expect_eq 2
    mov 0x14(%rdi), %eax
    mov $0xd4e5f607, %ebx
    expect_eq 3
    mov 0x18(%rdi), %rax
    mov $0x0123456789abcdef, %rbx
    expect_eq 4
    mov 0x0(%rdi), %eax
    mov $REGFILE_ID, %ebx
    expect_eq 5
    exit 0
fail_1: exit 1
fail_2: exit 2
fail_3: exit 3
fail_4: exit 4
fail_5: exit 5
