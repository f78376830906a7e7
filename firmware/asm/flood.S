/* A guest that misbehaves in bulk: 20000 rounds of accesses that reach no device (an MMIO
 * load and store, a port load and store), then exit 0. Each one is counted and may be
 * logged at debug level; the reliability tests count the log lines such a flood produces. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $UNMAPPED, %edi
    mov $0x3e0, %dx
    mov $20000, %ecx
1:  mov (%rdi), %eax
    movb %al, (%rdi)
    inb %dx, %al
    outb %al, %dx
    dec %ecx
    jnz 1b
    exit 0
