/* Installs a #BP handler, executes int3 and checks that the handler ran once and that
 * execution resumed after the instruction. (Some software KVMs cannot emulate INT3 in long
 * mode; mmiolab then re-injects #BP itself.) */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    lea bp_handler(%rip), %rax
    lea idt(%rip), %rdi
    add $3 * 16, %rdi           /* gate for vector 3 */
    mov %ax, (%rdi)             /* offset 15:0 */
    movw $0x10, 2(%rdi)         /* 64-bit code selector */
    movw $0x8e00, 4(%rdi)       /* present, DPL 0, interrupt gate */
    shr $16, %rax
    mov %ax, 6(%rdi)            /* offset 31:16 */
    shr $16, %rax
    mov %eax, 8(%rdi)           /* offset 63:32 */
    lidt idtr(%rip)
    int3
    mov hits(%rip), %rax
    mov $1, %ebx
    expect_eq 1
    exit 0
fail_1: exit 1

bp_handler:
    incq hits(%rip)
    iretq

    .data
idtr:
    .word 16 * 16 - 1
    .quad idt
    .bss
    .balign 16
idt: .skip 16 * 16
hits: .skip 8
