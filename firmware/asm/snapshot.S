/* Snapshot and restore (docs/snapshot.md), on tests/machines/described.toml: the program
 * puts the machine into a state worth saving, marks its snapshot point twice (the console
 * line "SNAP", then a write to the snapshot port 0xf8; either is a no-op unless mmiolab was
 * asked to stop there), then checks that everything is as it left it:
 *   - its own registers and RAM, and the device's memslot window `fast`;
 *   - the device's saturating counter SEQ (read once more: the saved count plus one);
 *   - three elements in the FIFO `rx`, in order;
 *   - a waiting effect (`later`: STATUS.ERR two accesses after the write to LATER);
 *   - a level interrupt asserted and pending (STATUS.DONE with CTRL.IE, taken with
 *     interrupts off): delivered once, after `sti`, and cleared by the handler.
 * Prints "A" before the points and "B" after; exits 0 when every check holds, else with
 * the number of the first check that failed. */
#include "mmiolab.h"
#include "described-machine.h"

#define BEH        DESC_BEH_BASE
#define VEC_LEVEL  0x35
#define SNAPSHOT_PORT 0xf8
#define MARK       0x5a5a1234

/* Prints the byte \c on COM1. */
.macro putc c
    mov $\c, %al
    mov $COM1, %dx
    out %al, %dx
.endm

    .code64
    .globl _start
_start:
    mov $BEH, %edi
    putc 'A'
    putc '\n'

    /* Interrupts routed, but off: IDT, PIC masked, LAPIC on, IOAPIC pin level. */
    gate VEC_LEVEL, on_level
    lapic_on
    ioapic_route DESC_BEH_IRQ, 0x8000|VEC_LEVEL

    /* The counter: three reads; the last count kept in %r13. */
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    and $0xff, %eax
    mov %eax, %r13d
    /* The FIFO: three elements. */
    movl $0xb1, DESC_BEH_DATA_OFFSET(%rdi)
    movl $0xb2, DESC_BEH_DATA_OFFSET(%rdi)
    movl $0xb3, DESC_BEH_DATA_OFFSET(%rdi)
    /* RAM and the memslot window. */
    movq $MARK, saved(%rip)
    movl $0xcafe, DESC_BEH_FAST_OFFSET + 8(%rdi)
    /* The level interrupt: GO with IE; wait for DONE (interrupts off: it stays pending). */
    movl $3, DESC_BEH_CTRL_OFFSET(%rdi)
1:  mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    test $1, %eax
    jz 1b
    /* The waiting effect: STATUS.ERR two accesses after this write. */
    movl $1, DESC_BEH_LATER_OFFSET(%rdi)
    mov $MARK, %r12

    /* The snapshot points. */
    putc 'S'
    putc 'N'
    putc 'A'
    putc 'P'
    putc '\n'
    mov $1, %al
    out %al, $SNAPSHOT_PORT

    putc 'B'
    putc '\n'
    mov %r12, %rax
    check 1, MARK
    mov saved(%rip), %rax
    check 2, MARK
    mov DESC_BEH_FAST_OFFSET + 8(%rdi), %eax
    check 3, 0xcafe
    /* Two accesses (the FIFO's level, its first element), then ERR has risen. */
    mov DESC_BEH_FSTAT_OFFSET(%rdi), %eax
    check 4, 3
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 5, 0xb1
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    check 6, 0x00a50003
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 7, 0xb2
    mov DESC_BEH_DATA_OFFSET(%rdi), %eax
    check 8, 0xb3
    mov DESC_BEH_FSTAT_OFFSET(%rdi), %eax
    check 9, 0x100
    /* The counter goes on from the saved count. */
    mov DESC_BEH_SEQ_OFFSET(%rdi), %eax
    and $0xff, %eax
    dec %eax
    cmp %r13d, %eax
    jne fail
    incl checks(%rip)
    mov level_hits(%rip), %eax
    check 11, 0
    /* The pending level interrupt, once. */
    sti
1:  cmpq $1, level_hits(%rip)
    jae 2f
    hlt
    jmp 1b
2:  mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov level_hits(%rip), %eax
    check 12, 1
    mov last_status(%rip), %eax
    and $1, %eax
    check 13, 1
    cli
    exit 0

    checks_fail

on_level:
    push %rax
    push %rdi
    mov $BEH, %edi
    mov DESC_BEH_STATUS_OFFSET(%rdi), %eax
    mov %eax, last_status(%rip)
    movl $3, DESC_BEH_STATUS_OFFSET(%rdi)
    incq level_hits(%rip)
    lapic_eoi
    pop %rdi
    pop %rax
    iretq

    idt_storage
saved: .skip 8
checks: .skip 4
last_status: .skip 4
level_hits: .skip 8
