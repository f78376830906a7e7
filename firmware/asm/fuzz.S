/* Guest-side fuzzer (docs/fuzzing.md, "Guest-side fuzzer"): seeded random accesses against
 * the bundled models placed by tests/machines/fuzz.toml, then exit 0.
 *
 * The seed and the number of steps are the two quads after the marker "MMIOLAB-FUZZ-SEED"
 * in .data: tests/fuzz.rs patches them into a copy of this ELF (seed 0 becomes 1). Every
 * step draws r = next() (xorshift64*) and does one of, by r & 7:
 *   0-3  one MMIO access: zone (r>>3) % NZONES, offset ((r>>8) & 0xffffff) % span,
 *        width 1 << ((r>>32) & 3), aligned down to it when bit 34 is set; bit 35: write
 *        (value = next()) or read
 *   4    a page-boundary straddle: boundary (r>>3) % NBOUNDS, width w = 2 << ((r>>16) % 3),
 *        k = 1 + ((r>>24) & 0xff) % (w - 1) bytes before the boundary; bit 35 as above.
 *        KVM splits it at the page boundary into a k-byte and a (w-k)-byte access
 *   5    MMIO string: zone and offset as 0-3, element width as 0-3 (offset aligned to
 *        it), count 1 + ((r>>40) & 7); bit 35 set: bit 36 chooses `rep stos` (value =
 *        next()) or `rep movs` from `pattern`; clear: `rep movs` into `sink`
 *   6    port string I/O: port zone (r>>3) % NPORTS, port base + ((r>>8) & 0xff) % span,
 *        width 1 << ((r>>32) % 3), count 1 + ((r>>40) & 7); bit 35: `rep outs` from
 *        `pattern` or `rep ins` into `sink`
 *   7    one port access as 6, count 1; bit 35: `out` (value = next()) or `in`
 * tests/fuzz.rs runs the same generator in Rust and compares what it predicts with the
 * access lines of the trace. Keep the two in step. */
#include "mmiolab.h"
/* The tables' lengths (zones, bounds, ports at the end). */
#define NZONES 7
#define NBOUNDS 7
#define NPORTS 3

    .code64
    .globl _start
_start:
    cld
    mov seed(%rip), %r15
    test %r15, %r15
    jnz 1f
    mov $1, %r15
1:  mov steps(%rip), %r14

step:
    test %r14, %r14
    jz done
    dec %r14
    call next
    mov %rax, %r12
    mov %r12, %rcx
    and $7, %ecx
    cmp $4, %ecx
    jb mmio_single
    je straddle
    cmp $6, %ecx
    jb mmio_string
    je port_string
    jmp port_single

/* %rdi = zone base + offset for r = %r12, %rbx = zone index. */
zone_addr:
    mov %r12, %rax
    shr $3, %rax
    xor %edx, %edx
    mov $NZONES, %ecx
    div %rcx
    mov %rdx, %rbx
    shl $4, %rdx
    lea zones(%rip), %rsi
    mov (%rsi,%rdx), %rdi
    mov 8(%rsi,%rdx), %rcx
    mov %r12, %rax
    shr $8, %rax
    and $0xffffff, %eax
    xor %edx, %edx
    div %rcx
    add %rdx, %rdi
    ret

/* %rdi = port for r = %r12 (as zone_addr, on the port zones). */
port_addr:
    mov %r12, %rax
    shr $3, %rax
    xor %edx, %edx
    mov $NPORTS, %ecx
    div %rcx
    shl $4, %rdx
    lea ports(%rip), %rsi
    mov (%rsi,%rdx), %rdi
    mov 8(%rsi,%rdx), %rcx
    mov %r12, %rax
    shr $8, %rax
    and $0xff, %eax
    xor %edx, %edx
    div %rcx
    add %rdx, %rdi
    ret

/* %ecx = (r >> 32) & 3: log2 of the width. */
width_log:
    mov %r12, %rcx
    shr $32, %rcx
    and $3, %ecx
    ret

mmio_single:
    call zone_addr
    call width_log
    bt $34, %r12
    jnc 1f
    mov $-1, %rax
    shl %cl, %rax
    and %rax, %rdi
1:  bt $35, %r12
    jc mmio_write
    /* read */
    cmp $1, %ecx
    jb 1f
    je 2f
    cmp $3, %ecx
    jb 4f
    movq (%rdi), %rax
    jmp step
1:  movb (%rdi), %al
    jmp step
2:  movw (%rdi), %ax
    jmp step
4:  movl (%rdi), %eax
    jmp step
mmio_write:
    mov %ecx, %ebx
    call next
    cmp $1, %ebx
    jb 1f
    je 2f
    cmp $3, %ebx
    jb 4f
    movq %rax, (%rdi)
    jmp step
1:  movb %al, (%rdi)
    jmp step
2:  movw %ax, (%rdi)
    jmp step
4:  movl %eax, (%rdi)
    jmp step

straddle:
    mov %r12, %rax
    shr $3, %rax
    xor %edx, %edx
    mov $NBOUNDS, %ecx
    div %rcx
    lea bounds(%rip), %rsi
    mov (%rsi,%rdx,8), %rdi
    /* width: 2 << ((r >> 16) % 3), in %rbx */
    mov %r12, %rax
    shr $16, %rax
    xor %edx, %edx
    mov $3, %ecx
    div %rcx
    mov %edx, %ecx
    mov $2, %ebx
    shl %cl, %ebx
    /* k = 1 + ((r >> 24) & 0xff) % (w - 1) */
    mov %r12, %rax
    shr $24, %rax
    and $0xff, %eax
    xor %edx, %edx
    lea -1(%rbx), %ecx
    div %rcx
    inc %rdx
    sub %rdx, %rdi
    bt $35, %r12
    jc straddle_write
    cmp $4, %ebx
    jb 2f
    je 4f
    movq (%rdi), %rax
    jmp step
2:  movw (%rdi), %ax
    jmp step
4:  movl (%rdi), %eax
    jmp step
straddle_write:
    call next
    cmp $4, %ebx
    jb 2f
    je 4f
    movq %rax, (%rdi)
    jmp step
2:  movw %ax, (%rdi)
    jmp step
4:  movl %eax, (%rdi)
    jmp step

/* %rcx = 1 + ((r >> 40) & 7) */
string_count:
    mov %r12, %rcx
    shr $40, %rcx
    and $7, %ecx
    inc %ecx
    ret

mmio_string:
    call zone_addr
    call width_log
    mov $-1, %rax
    shl %cl, %rax
    and %rax, %rdi
    mov %ecx, %ebx
    call string_count
    bt $35, %r12
    jnc string_read
    bt $36, %r12
    jc string_stos
    /* rep movs from pattern to the device */
    lea pattern(%rip), %rsi
    jmp movs_by_width
string_read:
    mov %rdi, %rsi
    lea sink(%rip), %rdi
movs_by_width:
    cmp $1, %ebx
    jb 1f
    je 2f
    cmp $3, %ebx
    jb 4f
    rep movsq
    jmp step
1:  rep movsb
    jmp step
2:  rep movsw
    jmp step
4:  rep movsl
    jmp step
string_stos:
    mov %rcx, %r13
    call next
    mov %r13, %rcx
    cmp $1, %ebx
    jb 1f
    je 2f
    cmp $3, %ebx
    jb 4f
    rep stosq
    jmp step
1:  rep stosb
    jmp step
2:  rep stosw
    jmp step
4:  rep stosl
    jmp step

/* %ebx = log2 of the port width: (r >> 32) % 3 */
port_width:
    mov %r12, %rax
    shr $32, %rax
    xor %edx, %edx
    mov $3, %ecx
    div %rcx
    mov %edx, %ebx
    ret

port_string:
    call port_addr
    mov %edi, %edx
    mov %edx, %r13d
    call port_width
    call string_count
    mov %r13d, %edx
    bt $35, %r12
    jnc ins_
    lea pattern(%rip), %rsi
    cmp $1, %ebx
    jb 1f
    je 2f
    rep outsl
    jmp step
1:  rep outsb
    jmp step
2:  rep outsw
    jmp step
ins_:
    lea sink(%rip), %rdi
    cmp $1, %ebx
    jb 1f
    je 2f
    rep insl
    jmp step
1:  rep insb
    jmp step
2:  rep insw
    jmp step

port_single:
    call port_addr
    mov %edi, %r13d
    call port_width
    bt $35, %r12
    jnc in_
    call next
    mov %r13d, %edx
    cmp $1, %ebx
    jb 1f
    je 2f
    out %eax, %dx
    jmp step
1:  out %al, %dx
    jmp step
2:  out %ax, %dx
    jmp step
in_:
    mov %r13d, %edx
    cmp $1, %ebx
    jb 1f
    je 2f
    in %dx, %eax
    jmp step
1:  in %dx, %al
    jmp step
2:  in %dx, %ax
    jmp step

/* xorshift64*: %r15 is the state; returns the next value in %rax (clobbers %rdx). */
next:
    mov %r15, %rax
    mov %rax, %rdx
    shr $12, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shl $25, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shr $27, %rdx
    xor %rdx, %rax
    mov %rax, %r15
    movabs $0x2545f4914f6cdd1d, %rdx
    imul %rdx, %rax
    ret

done:
    exit 0

    .data
    .balign 8
    .ascii "MMIOLAB-FUZZ-SEED"
    .balign 8
seed:  .quad 1
steps: .quad 1000
/* MMIO zones: (base, span). An access starts in [base, base + span) and, 8 bytes or 64
 * (a string) further, is still in the same device region or hole. */
zones:
    .quad 0xd0000000, 0xff8     /* rf: built-in register file */
    .quad 0xd0001000, 0x240     /* demo (0x200 bytes of registers, then the region's rest) */
    .quad 0xd0002000, 0x40      /* a hole */
    .quad 0xd0003000, 0x20      /* gpio-mmio */
    .quad 0xd0004000, 0x10      /* uart16550 on MMIO */
    .quad 0xa0000, 0x2000       /* isa-hole: trapped RAM */
    .quad 0xd0005000, 0x10      /* built-in counter (8 bytes), then a hole */
/* Page boundaries with trapped MMIO on both sides. */
bounds:
    .quad 0xd0001000            /* rf | demo */
    .quad 0xd0002000            /* demo | hole */
    .quad 0xd0003000            /* hole | gpio */
    .quad 0xd0004000            /* gpio | uart */
    .quad 0xd0005000            /* uart | counter */
    .quad 0xd0006000            /* hole | hole */
    .quad 0xa1000               /* inside isa-hole */
/* Port zones: (base, span). */
ports:
    .quad 0x300, 0x10           /* pregs: built-in register file */
    .quad 0x378, 0x8            /* lpt: parport */
    .quad 0x2f8, 0x8            /* com2: uart16550 */
pattern:
    .set i, 0
    .rept 64
    .byte (i * 7 + 1) & 0xff
    .set i, i + 1
    .endr
    .bss
    .balign 8
sink: .skip 64
