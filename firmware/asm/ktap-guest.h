/* A stand-in for a Linux test guest, for `mmiolab test`'s judgement of a whole run: prints
 * on COM1 what the test initramfs prints when every test passes (a KTAP document and the
 * /proc/iomem dump of the reliability tests' machine, one device `testdev` at 0xd0001000),
 * then ends the way the including program says, at `ending`. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    lea ktap_text(%rip), %rsi
    mov $COM1, %dx
1:  lodsb
    test %al, %al
    jz ending
    outb %al, %dx
    jmp 1b

    .section .rodata
ktap_text:
    .ascii "KTAP version 1\n1..2\nok 1 first\nok 2 second\n"
    .ascii "mmiolab: begin /proc/iomem\n"
    .ascii "d0001000-d0001fff : d0001000.testdev testdev@d0001000\n"
    .asciz "mmiolab: end /proc/iomem\n"
    .text
