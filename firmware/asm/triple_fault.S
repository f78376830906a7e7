/* Loads an empty IDT and executes ud2: #UD cannot be delivered, nor can the resulting
 * double fault, so the CPU shuts down (a triple fault). */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    lidt empty_idt(%rip)
    ud2
    exit 1
    .data
empty_idt:
    .word 0
    .quad 0
