/* Exercises every register behaviour of a described device (tests/machines/described.toml,
 * devices/behaviours.toml and devices/bigedge.toml) and its interrupts: a level interrupt
 * raised by a delayed effect and acknowledged by write-1-to-clear must arrive exactly once
 * per event; an edge interrupt once per edge. Exits 0 when every check holds, else with the
 * number of the first check that failed. */
#include "mmiolab.h"
#include "described-machine.h"   /* generated: mmiolab header --config tests/machines/described.toml */

#define BEH        DESC_BEH_BASE       /* device "beh", MMIO */
#define BEH_PORT   DESC_BEH_PIO_BASE   /* device "beh", the same registers through I/O ports */
#define BE         DESC_BE_BASE        /* device "be", big endian */
#define VEC_LEVEL  0x35
#define VEC_EDGE   0x36

    .code64
    .globl _start
_start:
    mov $BEH, %edi

    /* ID is constant. */
    mov DESC_BEH_ID_OFFSET(%rdi), %eax
    check 1, 0x4d4c4442
    movl $0, (%rdi)
    mov (%rdi), %eax
    check 2, 0x4d4c4442
    /* The same register through the I/O-port mapping. */
    mov $BEH_PORT, %dx
    in %dx, %eax
    check 3, 0x4d4c4442

    /* Write behaviours: w1s, w1t, w0c, wset, wclr, w0s, w0t in one register. */
    mov DESC_BEH_MODS_OFFSET(%rdi), %eax
    check 4, 0x000f0f00
    movl $0x0aa00a35, DESC_BEH_MODS_OFFSET(%rdi)
    mov DESC_BEH_MODS_OFFSET(%rdi), %eax
    check 5, 0x0550fa35

    /* Write-once. */
    movl $7, DESC_BEH_ONCE_OFFSET(%rdi)
    movl $9, DESC_BEH_ONCE_OFFSET(%rdi)
    mov DESC_BEH_ONCE_OFFSET(%rdi), %eax
    check 6, 7

    /* Read-to-set: the read returns the old value, then the bits are set. */
    movl $0, DESC_BEH_RDSET_OFFSET(%rdi)
    mov DESC_BEH_RDSET_OFFSET(%rdi), %eax
    check 7, 0
    mov DESC_BEH_RDSET_OFFSET(%rdi), %eax
    check 8, 0xffffffff

    /* A counter incremented by each read, saturating at 0xff with a sticky flag. */
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    check 9, 0
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    check 10, 1
    mov $300, %ecx
1:  mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    loop 1b
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    check 11, 0x1ff
    movl $0x100, DESC_BEH_SEQ_OFFSET(%rdi)
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    check 12, 0xff

    /* FIFO: order, level, full, overflow, underflow, their W1C flags. */
    mov DESC_BEH_FSTAT_OFFSET(%rdi), %eax
    check 13, 0x100
    movl $0xa1, DESC_BEH_DATA_OFFSET(%rdi)
    movl $0xa2, DESC_BEH_DATA_OFFSET(%rdi)
    movl $0xa3, DESC_BEH_DATA_OFFSET(%rdi)
    movl $0xa4, DESC_BEH_DATA_OFFSET(%rdi)
    movl $0xa5, DESC_BEH_DATA_OFFSET(%rdi)
    mov DESC_BEH_FSTAT_OFFSET(%rdi), %eax
    check 14, 0x10204
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 15, 0xa1
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 16, 0xa2
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 17, 0xa3
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 18, 0xa4
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 19, 0xdeadbeef
    mov DESC_BEH_FSTAT_OFFSET(%rdi), %eax
    check 20, 0x30100
    movl $0x30000, DESC_BEH_FSTAT_OFFSET(%rdi)
    mov DESC_BEH_FSTAT_OFFSET(%rdi), %eax
    check 21, 0x100
    /* rep outsl / rep insl on the FIFO's port: every element, in order. */
    lea words(%rip), %rsi
    mov $BEH_PORT + DESC_BEH_DATA_OFFSET, %dx
    mov $3, %ecx
    cld
    rep outsl
    lea back(%rip), %rdi
    mov $3, %ecx
    rep insl
    mov $BEH, %edi
    mov back(%rip), %eax
    check 22, 0x01020304
    mov back + 4(%rip), %eax
    check 23, 0x05060708
    mov back + 8(%rip), %eax
    check 24, 0x090a0b0c

    /* A read-only and a write-only register at one offset. */
    mov DESC_BEH_RXD_OFFSET(%rdi), %eax
    check 25, 0x11
    movl $0x41, DESC_BEH_RXD_OFFSET(%rdi)
    mov DESC_BEH_RXD_OFFSET(%rdi), %eax
    check 26, 0x42

    /* Banked views chosen by LCR.DLAB. */
    movl $0xb0, DESC_BEH_BANK0_OFFSET(%rdi)
    movl $0x80, DESC_BEH_LCR_OFFSET(%rdi)
    movl $0xb1, DESC_BEH_BANK0_OFFSET(%rdi)
    mov DESC_BEH_BANK0_OFFSET(%rdi), %eax
    check 27, 0xb1
    movl $0, DESC_BEH_LCR_OFFSET(%rdi)
    mov DESC_BEH_BANK0_OFFSET(%rdi), %eax
    check 28, 0xb0

    /* Width policies: rejected (all ones, write dropped) and split. */
    movl $0x12345678, DESC_BEH_WIDE_OFFSET(%rdi)
    movzbl DESC_BEH_WIDE_OFFSET(%rdi), %eax
    check 29, 0xff
    movb $0, DESC_BEH_WIDE_OFFSET(%rdi)
    mov DESC_BEH_WIDE_OFFSET(%rdi), %eax
    check 30, 0x12345678
    movl $0x12345678, DESC_BEH_SPLIT_OFFSET(%rdi)
    movzbl DESC_BEH_SPLIT_OFFSET + 1(%rdi), %eax
    check 31, 0x56
    movb $0, DESC_BEH_SPLIT_OFFSET + 1(%rdi)
    mov DESC_BEH_SPLIT_OFFSET(%rdi), %eax
    check 32, 0x12340078

    /* Reserved bits read their defined value; an effect two accesses later. */
    movl $1, DESC_BEH_LATER_OFFSET(%rdi)
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    check 33, 0x00a50000
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    check 34, 0x00a50000
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    check 35, 0x00a50002
    movl $2, DESC_BEH_STATUS_OFFSET(%rdi)
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    check 36, 0x00a50000

    /* An array element's effect touches that element only. */
    movl $1, DESC_BEH_CH_OFFSET(2)(%rdi)
    mov DESC_BEH_CH_OFFSET(2)(%rdi), %eax
    check 37, 2
    mov DESC_BEH_CH_OFFSET(1)(%rdi), %eax
    check 38, 0

    /* The trapped memory window: reset fill, then a 64-bit round trip. */
    mov DESC_BEH_BUF_OFFSET(%rdi), %rax
    movabs $0x5a5a5a5a5a5a5a5a, %rbx
    cmp %rbx, %rax
    jne fail
    incl checks(%rip)
    movabs $0x0123456789abcdef, %rbx
    mov %rbx, DESC_BEH_BUF_OFFSET + 0xf8(%rdi)
    mov DESC_BEH_BUF_OFFSET + 0xf8(%rdi), %rax
    cmp %rbx, %rax
    jne fail
    incl checks(%rip)
    movzbl DESC_BEH_BUF_OFFSET + 0xff(%rdi), %eax
    check 41, 0x01

    /* A memslot window: plain memory (no exit), filled at start. */
    mov DESC_BEH_FAST_OFFSET(%rdi), %eax
    check 42, 0x77777777
    movl $0x600dcafe, DESC_BEH_FAST_OFFSET + 0xffc(%rdi)
    mov DESC_BEH_FAST_OFFSET + 0xffc(%rdi), %eax
    check 43, 0x600dcafe
    /* A read-only memslot window: the write exits and is dropped. */
    movl $0, DESC_BEH_ROM_OFFSET + 8(%rdi)
    mov DESC_BEH_ROM_OFFSET + 8(%rdi), %eax
    check 44, 0x33333333

    /* Big endian: the byte at the lowest address is the most significant. */
    mov $BE, %esi
    movzbl (%rsi), %eax
    check 45, 0x11
    mov (%rsi), %eax
    check 46, 0x44332211

    /* Interrupts: IDT, PIC masked, LAPIC on, IOAPIC pin 5 level, pin 6 edge. */
    gate VEC_LEVEL, on_level
    gate VEC_EDGE, on_edge
    lapic_on
    ioapic_route DESC_BEH_IRQ, 0x8000|VEC_LEVEL
    ioapic_route DESC_BE_IRQ, VEC_EDGE
    sti

    /* Level: GO with IE; 200 us later DONE rises; the handler clears it by W1C. */
    movl $3, DESC_BEH_CTRL_OFFSET(%rdi)
1:  cmpq $1, level_hits(%rip)
    jae 2f
    hlt
    jmp 1b
2:  mov last_status(%rip), %eax
    check 47, 0x00a50101
    /* More accesses (each a chance for a stray interrupt): still one. */
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov level_hits(%rip), %eax
    check 48, 1
    movl $3, DESC_BEH_CTRL_OFFSET(%rdi)
1:  cmpq $2, level_hits(%rip)
    jae 2f
    hlt
    jmp 1b
2:  mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov level_hits(%rip), %eax
    check 49, 2

    /* Edge: a write to KICK sets PEND, one edge; the handler clears PEND. */
    mov $BE, %esi
    movl $0, DESC_BE_KICK_OFFSET(%rsi)
1:  cmpq $1, edge_hits(%rip)
    jae 2f
    hlt
    jmp 1b
2:  mov DESC_BE_PEND_OFFSET(%rsi), %eax
    mov DESC_BE_PEND_OFFSET(%rsi), %eax
    mov edge_hits(%rip), %eax
    check 50, 1
    mov DESC_BE_PEND_OFFSET(%rsi), %eax
    check 51, 0

    cli
    exit 0

    checks_fail

on_level:
    push %rax
    push %rdi
    mov $BEH, %edi
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov %eax, last_status(%rip)
    movl $1, DESC_BEH_STATUS_OFFSET(%rdi)
    incq level_hits(%rip)
    lapic_eoi
    pop %rdi
    pop %rax
    iretq

on_edge:
    push %rax
    push %rsi
    mov $BE, %esi
    movl $0x01000000, DESC_BE_PEND_OFFSET(%rsi)   /* big endian: these bytes are the value 1 */
    incq edge_hits(%rip)
    lapic_eoi
    pop %rsi
    pop %rax
    iretq

    .data
words:
    .long 0x01020304, 0x05060708, 0x090a0b0c
    idt_storage
back: .skip 16
checks: .skip 4
last_status: .skip 4
level_hits: .skip 8
edge_hits: .skip 8
