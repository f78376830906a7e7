/* String I/O: `rep outsb` of 16 bytes to one port (each byte is its own access, in order),
 * then `rep insw` of 8 words from the sequence counter, which must arrive as 1..8. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    cld
    lea message(%rip), %rsi
    mov $16, %ecx
    mov $REGS_PORT + 0xc, %dx
    rep outsb

    lea words(%rip), %rdi
    mov $8, %ecx
    mov $SEQ_PORT, %dx
    rep insw

    lea words(%rip), %rsi
    mov $1, %ebx
check:
    movzwq (%rsi), %rax
    expect_eq 1
    add $2, %rsi
    inc %ebx
    cmp $9, %ebx
    jne check
    exit 0
fail_1:
    /* Report which element was wrong: 0x10 + its expected value. */
    lea 0x10(%rbx), %eax
    out %al, $EXIT_PORT
1:  jmp 1b

    .data
message: .ascii "mmiolab rep outs"
    .bss
words: .skip 16
