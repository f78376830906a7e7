/* Echoes what arrives on a 16550 at port 0x2f8 (the bundled uart16550 model, whose `rx`
 * and `tx` FIFOs the machine file connects to the host) until it has echoed a newline,
 * then exits 0. */
#include "mmiolab.h"

#define UART 0x2f8
#define LSR  (UART + 5)
#define LSR_DR 0x01

    .code64
    .globl _start
_start:
1:  mov $LSR, %dx
    in %dx, %al
    test $LSR_DR, %al
    jz 1b
    mov $UART, %dx
    in %dx, %al
    out %al, %dx
    cmp $'\n', %al
    jne 1b
    exit 0
