/* Port output then input at widths 1, 2 and 4 on the register file's storage ports. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $REGS_PORT + 0xc, %dx
    mov $0x5a, %al
    outb %al, %dx
    xor %eax, %eax
    inb %dx, %al
    mov $0x5a, %ebx
    expect_eq 1
    mov $0x6b7c, %ax
    outw %ax, %dx
    xor %eax, %eax
    inw %dx, %ax
    mov $0x6b7c, %ebx
    expect_eq 2
    mov $0x8d9eafb0, %eax
    outl %eax, %dx
    xor %eax, %eax
    inl %dx, %eax
    mov $0x8d9eafb0, %ebx
    expect_eq 3
    mov $REGS_PORT, %dx
    xor %eax, %eax
    inl %dx, %eax
    mov $REGFILE_ID, %ebx
    expect_eq 4
    exit 0
fail_1: exit 1
fail_2: exit 2
fail_3: exit 3
fail_4: exit 4
