/* Loads from an address and a port no device decodes: all ones at every width. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $UNMAPPED, %edi
    mov $-1, %rbx
    movzbq (%rdi), %rax
    movzbq %bl, %rbx
    expect_eq 1
    mov $-1, %rbx
    movzwq (%rdi), %rax
    movzwq %bx, %rbx
    expect_eq 2
    mov $0xffffffff, %ebx
    mov (%rdi), %eax
    expect_eq 3
    mov $-1, %rbx
    mov (%rdi), %rax
    expect_eq 4
    movb $0x12, (%rdi)          /* dropped */
    mov $0x3e0, %dx
    xor %eax, %eax
    inb %dx, %al
    mov $0xff, %ebx
    expect_eq 5
    exit 0
fail_1: exit 1
fail_2: exit 2
fail_3: exit 3
fail_4: exit 4
fail_5: exit 5
