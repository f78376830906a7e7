/* Powers the machine off through the system controller (a 32-bit write of 1 at offset 0,
 * as Linux's syscon-poweroff does): mmiolab must end with status 0, "powered off". */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    mov $SYSCTL_BASE, %edi
    movl $1, (%rdi)
1:  jmp 1b
