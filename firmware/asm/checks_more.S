/* Breaks the register checker's rules unaligned, order and irq-stuck on purpose, once
 * each, on the machine tests/machines/checks_more.toml (device description
 * tests/machines/devices/checks_more.toml). tests/baremetal.rs runs it with --check and
 * expects exactly these findings:
 *   chk3.DATA    order (enable_before_data)  1  (DATA written while CTRL.EN is 0)
 *   chk3.WIN     unaligned                   1  (a 4-byte read at offset 2)
 *   chk3 (done)  irq-stuck                   1  (the handler never clears STATUS.DONE)
 * The interrupt handler reads STATUS and returns without clearing DONE. On a KVM whose
 * IOAPIC re-delivers a level line that is still high after the EOI, that is an interrupt
 * storm, which the handler ends itself after 8 calls by masking the pin; a software KVM
 * that ends level interrupts at delivery (kvm_pvm) delivers it once, so the program then
 * sends itself the same vector 4 times (self-IPIs), each one EOI of that vector as a
 * re-delivery would be. DONE is never cleared: the line is still high when the program
 * exits 0, so the count of EOIs in a row cannot depend on when the VMM reads them. */
#include "mmiolab.h"

#define CHK3       0xd0000000
#define PIN        5
#define VEC        0x35

    .code64
    .globl _start
_start:
    mov $CHK3, %edi
    movl $0x41, 0x04(%rdi)      /* DATA while CTRL.EN is 0: order */
    movl $1, 0x00(%rdi)         /* CTRL.EN */
    movl $0x42, 0x04(%rdi)      /* DATA: legal now */
    mov 0x10(%rdi), %eax        /* WIN, aligned: legal */
    mov 0x12(%rdi), %eax        /* WIN + 2, 4 bytes: unaligned */

    /* Interrupts: IDT, PIC masked, LAPIC on, IOAPIC pin 5 level-triggered. */
    gate VEC, on_irq
    lapic_on
    ioapic_route PIN, 0x8000|VEC
    sti

    movl $3, 0x00(%rdi)         /* CTRL.EN | CTRL.IE */
    movl $1, 0x0c(%rdi)         /* KICK: STATUS.DONE rises, the line with it */
1:  cmpq $1, hits(%rip)
    jae 2f
    hlt
    jmp 1b
2:  mov $4, %ecx                /* four more deliveries of the vector, one at a time */
3:  mov hits(%rip), %rbx
    movl $(0x40000 | VEC), 0x300(%r8)   /* self-IPI, fixed, vector VEC */
4:  cmp hits(%rip), %rbx
    jne 5f
    pause
    jmp 4b
5:  loop 3b
    cli
    exit 0

/* The buggy handler: looks at STATUS and returns, DONE still set (after 8 calls of a
 * storm it masks the pin, or the program would never run again). */
on_irq:
    push %rax
    push %rdi
    mov $CHK3, %edi
    mov 0x08(%rdi), %eax
    incq hits(%rip)
    cmpq $8, hits(%rip)
    jne 1f
    mov $IOAPIC, %eax
    movl $(0x10 + 2 * PIN), (%rax)
    movl $(0x18000 | VEC), 0x10(%rax)
1:
    lapic_eoi
    pop %rdi
    pop %rax
    iretq

    idt_storage
hits: .skip 8
