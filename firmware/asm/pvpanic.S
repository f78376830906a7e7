/* Reports a kernel panic through pvpanic (bit 0 of its byte register), as Linux's
 * pvpanic-mmio driver does: mmiolab must end with status 2, "panicked". */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $PVPANIC_BASE, %edi
    movb $1, (%rdi)
1:  jmp 1b
