/* Never ends on its own: iteration N stores N (8 bytes) to the register file at offset 0x20
 * and prints one character on COM1 (a newline every 64), forever. The reliability tests stop
 * it from outside (signals, --timeout, a closed or blocked console) and check that the trace
 * holds every store up to the stop, in order: the stored values count 0, 1, 2, ... */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $REGS_MMIO, %edi
    xor %ecx, %ecx
    mov $COM1, %dx
1:  mov %rcx, 0x20(%rdi)
    mov %ecx, %eax
    and $63, %eax
    cmp $63, %eax
    mov $'.', %al
    jne 2f
    mov $'\n', %al
2:  outb %al, %dx
    inc %rcx
    jmp 1b
