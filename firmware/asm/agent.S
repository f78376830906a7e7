/* Plays the Linux guest agent (guest/agent/mmiolab_agent.c) on tests/machines/checks.toml,
 * to test the host side of `--check`'s agent rules without a Linux guest: it checks the
 * agent port's magic, registers each record as the buffer and sends it, as the agent does.
 * tests/baremetal.rs expects exactly these findings, each with module "fw":
 *   unclaimed-access chk.ID   (test t1: read before any claim)
 *   unclaimed-access chk.KEY  (test t1: read after the claim was released)
 *   leaked-claim     chk      (test t2: "fw" unloaded holding a claim)
 *   leaked-mapping   chk      (test t2: and a mapping)
 * and none for the ID read made while the claim is held. Exits 0 (1: no agent port).
 * Its accesses to chk, per test (tests/baremetal.rs checks the per-test coverage exactly):
 *   t1:            ID read twice, KEY read
 *   t2:            CFG written (EN and MODE), CFG read, TXDATA written
 *   after t2 ends: TICKS read (by no module: "fw" is unloaded by then) */
#include "mmiolab.h"

#define CHK         0xd0000000
#define AGENT_PORT  0x5a0
#define AGENT_MAGIC 0x47414c4d

/* Registers record \rec as the buffer, then sends it. */
.macro send rec
    lea \rec(%rip), %rax
    mov $AGENT_PORT, %dx
    out %eax, %dx
    shr $32, %rax
    mov $(AGENT_PORT + 4), %dx
    out %eax, %dx
    mov $(\rec\()_end - \rec), %eax
    mov $(AGENT_PORT + 8), %dx
    out %eax, %dx
.endm

/* A record: kind, space, a, b, c, d, then the two strings. */
.macro record name, kind, space, a, b, c, d, s1, s2
    .balign 8
\name:
    .short \kind
    .short \name\()_end - \name
    .long \space
    .quad \a, \b, \c, \d
    .asciz "\s1"
    .asciz "\s2"
\name\()_end:
.endm

    .code64
    .globl _start
_start:
    mov $(AGENT_PORT + 0xc), %dx
    in %dx, %eax
    cmp $AGENT_MAGIC, %eax
    jne no_agent
    send load
    send test1
    mov $CHK, %edi
    mov 0x00(%rdi), %eax        /* ID: unclaimed-access */
    send claim
    mov 0x00(%rdi), %eax        /* ID: claimed, legal */
    send release
    mov 0x04(%rdi), %eax        /* KEY: unclaimed-access (released) */
    send test2
    send claim
    send map
    movl $0x3, 0x08(%rdi)       /* CFG: EN and MODE written, claimed */
    mov 0x08(%rdi), %eax        /* CFG read */
    movl $0x41, 0x0c(%rdi)      /* TXDATA written */
    send going                  /* leaked-claim, leaked-mapping */
    send notest                 /* t2 ends */
    mov 0x20(%rdi), %eax        /* TICKS, in no test */
    exit 0
no_agent:
    exit 1

    record load, 1, 0, _start, 0x1000, 0, 0, "fw", ""
    record test1, 8, 0, 0, 0, 0, 0, "t1", ""
    record claim, 4, 0, CHK, 0x100, 0, _start, "fw", "chk"
    record release, 5, 0, CHK, 0x100, 0, _start, "fw", ""
    record test2, 8, 0, 0, 0, 0, 0, "t2", ""
    record map, 6, 0, CHK, 0x100, 0xffffc90000000000, _start, "fw", ""
    record going, 3, 0, 0, 0, 0, 0, "fw", ""
    record notest, 8, 0, 0, 0, 0, 0, "", ""
