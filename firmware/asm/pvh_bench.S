/* The trapped-access benchmark payload (crates/bench, docs/performance.md).
 *
 * A 32-bit PVH guest: entered in protected mode with paging off, flat segments, EBX holding
 * the physical address of struct hvm_start_info (the x86/HVM direct boot ABI, as Xen, QEMU
 * and mmiolab implement it). Every runner boots this same file; only the command line says
 * what to do:
 *
 *     <kind> <count>          e.g. "p 0000020000"
 *
 * then ends the VM by writing STATUS_OK to the exit port 0xf4 (mmiolab exits with it, QEMU's
 * isa-debug-exit with 2 * STATUS_OK + 1). <count> is decimal; the bench pads it to ten digits
 * so that parsing costs the same guest instructions for every count.
 *
 * kind  access, repeated <count> times          target
 * p     outb %al, %dx                           port 0x510       (device)
 * P     outb %al, %dx                           port 0x200       (unmapped)
 * w     movl %eax, (%edi)                       MMIO 0xfeb00010  (device)
 * W     movl %eax, (%edi)                       MMIO 0xd0000000  (unmapped)
 * r     movl (%edi), %eax                       MMIO 0xfeb00010  (device)
 * R     movl (%edi), %eax                       MMIO 0xd0000000  (unmapped)
 *
 * The "device" targets are register files in tests/machines/bench.toml (port 0x510 is
 * storage offset 0x10 of a 32-port file at 0x500; 0xfeb00010 is storage offset 0x10 of a
 * 512-byte file at 0xfeb00000). QEMU microvm answers the same addresses with device models
 * that do next to nothing: fw_cfg's data port (writes ignored) and the first, empty
 * virtio-mmio transport (reads 0, writes ignored). The "unmapped" targets are decoded by
 * nothing in either VMM.
 *
 * The loop is unrolled eight times so that the guest instructions between two exits (which a
 * software KVM emulates, ~2.7 us each) stay few: 1.25 instructions per access on average.
 * The payload touches no memory besides reading the start info and the command line, and
 * needs no stack.
 *
 * It assembles as ELF32 (-m32) or as an ELF64 container of the same 32-bit code (-m64, as
 * Linux's vmlinux); mmiolab needs the latter, because linux-loader's ELF loader takes only
 * ELF64. The PVH note below adapts its descriptor size to the class.
 */

#define XEN_HVM_START_MAGIC     0x336ec578
#define START_INFO_CMDLINE      24          /* hvm_start_info.cmdline_paddr (u64) */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define EXIT_PORT       0xf4
#define STATUS_OK       0x20                /* QEMU: exit status 0x41 */
#define STATUS_BAD_INFO 0x3d                /* no hvm_start_info magic in EBX */
#define STATUS_BAD_ARGS 0x3e                /* no command line, or an unknown kind */

#define PORT_DEVICE     0x510
#define PORT_UNMAPPED   0x200
#define MMIO_DEVICE     0xfeb00010
#define MMIO_UNMAPPED   0xd0000000

/* ECX blocks of eight \insn, then EBX single ones; then the exit. */
.macro accesses insn
    test %ecx, %ecx
    jz 2f
1:
    .rept 8
    \insn
    .endr
    dec %ecx
    jnz 1b
2:  test %ebx, %ebx
    jz 4f
3:  \insn
    dec %ebx
    jnz 3b
4:  jmp done
.endm

    .code32
    .text
    .globl _start
_start:
    cld
    mov $STATUS_BAD_INFO, %eax
    cmpl $XEN_HVM_START_MAGIC, (%ebx)
    jne stop
    mov $STATUS_BAD_ARGS, %eax
    mov START_INFO_CMDLINE(%ebx), %esi
    test %esi, %esi
    jz stop
    movzbl (%esi), %ebp                 /* the kind */
    inc %esi
    xor %ecx, %ecx                      /* the count */
skip_blanks:
    movzbl (%esi), %eax
    inc %esi
    cmp $' ', %eax
    je skip_blanks
digits:
    sub $'0', %eax
    cmp $9, %eax
    ja parsed
    imul $10, %ecx, %ecx
    add %eax, %ecx
    movzbl (%esi), %eax
    inc %esi
    jmp digits
parsed:
    mov %ecx, %ebx
    shr $3, %ecx                        /* blocks of eight */
    and $7, %ebx                        /* the rest */
    xor %eax, %eax                      /* the value written */
    cmp $'p', %ebp
    je pio_device
    cmp $'P', %ebp
    je pio_unmapped
    cmp $'w', %ebp
    je mmio_write_device
    cmp $'W', %ebp
    je mmio_write_unmapped
    cmp $'r', %ebp
    je mmio_read_device
    cmp $'R', %ebp
    je mmio_read_unmapped
    mov $STATUS_BAD_ARGS, %eax
    jmp stop

pio_device:
    mov $PORT_DEVICE, %edx
    accesses "outb %al, %dx"
pio_unmapped:
    mov $PORT_UNMAPPED, %edx
    accesses "outb %al, %dx"
mmio_write_device:
    mov $MMIO_DEVICE, %edi
    accesses "movl %eax, (%edi)"
mmio_write_unmapped:
    mov $MMIO_UNMAPPED, %edi
    accesses "movl %eax, (%edi)"
mmio_read_device:
    mov $MMIO_DEVICE, %edi
    accesses "movl (%edi), %eax"
mmio_read_unmapped:
    mov $MMIO_UNMAPPED, %edi
    accesses "movl (%edi), %eax"

done:
    mov $STATUS_OK, %eax
stop:
    out %al, $EXIT_PORT
1:  cli
    hlt
    jmp 1b

/* The PVH entry point, in the layout every loader parses (Xen, QEMU, linux-loader): an ELF
 * note named "Xen" (namesz 4, with its NUL), type XEN_ELFNOTE_PHYS32_ENTRY, whose 4-byte
 * descriptor is the 32-bit physical entry address; name and descriptor 4-byte aligned. */
    .section .note.Xen, "a", @note
    .p2align 2
    .long 2f - 1f                       /* n_namesz */
    .long 4f - 3f                       /* n_descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY      /* n_type */
1:  .asciz "Xen"
2:  .p2align 2
3:
#ifdef __x86_64__
    .quad _start                        /* an ELF64 container: 8 bytes, as Linux writes it */
#else
    .long _start
#endif
4:  .p2align 2
