/* Shared by the bundled programs: the built-in devices and the bare-metal test machine.
 * The machine's addresses are generated from tests/machines/baremetal.toml into
 * mmiolab-machine.h (`cargo xtask headers` regenerates it; `cargo xtask test` fails while
 * it is stale). */
#include "mmiolab-machine.h"

#define EXIT_PORT   0xf4        /* test-exit device: a write ends the VM with that status */
#define COM1        0x3f8       /* 16550 UART */
#define REGS_MMIO   MMIOLAB_MMIO_REGS_BASE      /* regfile "mmio-regs", 0x1000 bytes */
#define REGS_PORT   MMIOLAB_PORT_REGS_PIO_BASE  /* regfile "port-regs", 16 ports (storage at 0xc-0xf) */
#define SEQ_PORT    MMIOLAB_SEQ_PIO_BASE        /* counter "seq": each read returns the next count */
#define UNMAPPED    0xd0100000  /* nothing is mapped here (the end of the platform bus) */
#define SYSCTL_BASE 0xfebfe000  /* system controller: 32-bit write of 1 at offset 0 powers off */
#define PVPANIC_BASE 0xfebff000 /* pvpanic-mmio: writing bit 0 reports a guest panic */
#define REGFILE_ID  0x4d4d494f

/* Ends the VM with status \code (a constant). */
.macro exit code
    mov $\code, %eax
    out %al, $EXIT_PORT
1:  jmp 1b
.endm

/* Jumps to fail_N (which exits with N) when %rax differs from %rbx. */
.macro expect_eq n
    cmp %rbx, %rax
    jne fail_\n
.endm

#define LAPIC       0xfee00000  /* local APIC (xAPIC MMIO) */
#define IOAPIC      0xfec00000  /* IOAPIC: index register, window at +0x10 */

/* Installs \handler as the interrupt gate of vector \vec in the program's `idt`.
 * Clobbers %rax and %rdx. */
.macro gate vec, handler
    lea \handler(%rip), %rax
    lea idt(%rip), %rdx
    add $\vec * 16, %rdx
    mov %ax, (%rdx)
    movw $0x10, 2(%rdx)
    movw $0x8e00, 4(%rdx)
    shr $16, %rax
    mov %ax, 6(%rdx)
    shr $16, %rax
    mov %eax, 8(%rdx)
.endm

/* Interrupts through the IOAPIC and the local APIC only: loads the program's `idtr`, masks
 * both PICs, enables the LAPIC (spurious vector 0xff). Leaves LAPIC in %r8. */
.macro lapic_on
    lidt idtr(%rip)
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    mov $LAPIC, %r8d
    movl $0x1ff, 0xf0(%r8)
.endm

/* Routes IOAPIC pin \pin to the redirection entry's low word \entry (the vector, with
 * 0x8000 for level-triggered), to the LAPIC of CPU 0. Clobbers %r9. */
.macro ioapic_route pin, entry
    mov $IOAPIC, %r9d
    movl $(0x10 + 2 * \pin), (%r9)
    movl $(\entry), 0x10(%r9)
    movl $(0x11 + 2 * \pin), (%r9)
    movl $0, 0x10(%r9)
.endm

/* A checked program's check \n: counts it in the program's 4-byte `checks` when %eax is
 * \expected, else jumps to `fail` (checks_fail). */
.macro check n, expected
    cmp $\expected, %eax
    jne fail
    incl checks(%rip)
.endm

/* `fail`: exits with the number of the failing check (the checks passed so far + 1). */
.macro checks_fail
fail:
    mov checks(%rip), %eax
    inc %eax
    out %al, $EXIT_PORT
1:  jmp 1b
.endm

/* Ends the interrupt being handled (the LAPIC's EOI register). Clobbers %eax. */
.macro lapic_eoi
    mov $LAPIC + 0xb0, %eax
    movl $0, (%rax)
.endm

/* The program's IDT (256 gates, filled by `gate`) and the `idtr` lapic_on loads; leaves
 * the assembler in .bss. */
.macro idt_storage
    .data
idtr:
    .word 256 * 16 - 1
    .quad idt
    .bss
    .balign 16
idt: .skip 256 * 16
.endm
