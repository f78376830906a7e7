/* Breaks each rule of the register checker on purpose, a known number of times, on the
 * machine tests/machines/checks.toml (device description tests/machines/devices/checks.toml).
 * tests/baremetal.rs runs it with --check and expects exactly these findings:
 *   chk.ID      write-read-only   2   (two writes that would change a read-only register)
 *   chk.KEY     write-once-again  1   (a second, different write to a write-once register)
 *   chk.CFG     reserved-bits     1   (bits 4-31 written with ones; they read as 0)
 *   chk.TXDATA  read-write-only   3   (three reads of a write-only register)
 *   chk.WIDE    bad-width         1   (a 16-bit read of a 32-bit-only register)
 *   chk (0x14)  hole              1   (a read of bytes no register covers)
 *   chk.DATA    write-full-fifo   1   (a third push onto FIFO q of depth 2)
 *   chk.DATA    read-empty-fifo   2   (four pops of the two elements)
 *   chk2.DATA   read-empty-fifo   1   allowed by the machine file
 * and none for LDATA, whose FIFO allows a pop while empty. Exits 0. */
#include "mmiolab.h"

#define CHK   0xd0000000
#define CHK2  0xd0001000

    .code64
    .globl _start
_start:
    mov $CHK, %edi
    movl $0, 0x00(%rdi)         /* ID: write-read-only */
    movl $0, 0x00(%rdi)         /* ID: write-read-only */
    movl $5, 0x04(%rdi)         /* KEY: the first write is legal */
    movl $6, 0x04(%rdi)         /* KEY: write-once-again */
    movl $0xf0000003, 0x08(%rdi) /* CFG: reserved-bits */
    movl $0x41, 0x0c(%rdi)      /* TXDATA: writing is legal */
    mov 0x0c(%rdi), %eax        /* TXDATA: read-write-only, three times */
    mov 0x0c(%rdi), %eax
    mov 0x0c(%rdi), %eax
    movzwl 0x10(%rdi), %eax     /* WIDE: bad-width */
    mov 0x14(%rdi), %eax        /* hole */
    movl $1, 0x18(%rdi)         /* DATA: two pushes fill q */
    movl $2, 0x18(%rdi)
    movl $3, 0x18(%rdi)         /* DATA: write-full-fifo */
    mov 0x18(%rdi), %eax        /* DATA: two pops empty q */
    mov 0x18(%rdi), %eax
    mov 0x18(%rdi), %eax        /* DATA: read-empty-fifo, twice */
    mov 0x18(%rdi), %eax
    mov 0x1c(%rdi), %eax        /* LDATA: empty, but allowed by its description */
    mov $CHK2, %edi
    mov 0x18(%rdi), %eax        /* chk2 DATA: read-empty-fifo, allowed by the machine */
    exit 0
