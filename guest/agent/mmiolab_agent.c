// SPDX-License-Identifier: GPL-2.0
/*
 * mmiolab_agent: the guest side of `mmiolab run --check` (docs/checker.md, "The guest
 * agent"). It tells the host what the host cannot see from outside the guest:
 *
 *  - which module's text is where (a module notifier: load, end of init, unload), so the
 *    host can name the module whose code made a trapped access (the guest RIP, or a return
 *    address on the guest stack);
 *  - which module claimed (__request_region: request_mem_region, request_region and their
 *    devm_ forms), released (__release_region), mapped (ioremap*, ioport_map) and unmapped
 *    (iounmap, ioport_unmap) which range: kprobes and kretprobes;
 *  - which test is running: /init writes each test's name to
 *    /sys/module/mmiolab_agent/parameters/test (an empty name ends it).
 *
 * The channel is a paravirtual I/O-port device the host places only with --check:
 *   port+0x0  write32: low half of the record buffer's guest-physical address
 *   port+0x4  write32: high half; registers the buffer
 *   port+0x8  write32: a record of that many bytes is in the buffer (one VM exit each)
 *   port+0xc  read32 : "MLAG" (0x47414c4d) when the host listens
 * Without the device the magic read returns all ones, and the agent stays idle: no
 * kprobe, no notifier, nothing on any path.
 *
 * The owner of a claim or mapping is the first module text address found on the stack
 * from the probed function's entry upwards (its caller, or the module whose probe called
 * a devm_ or of_ helper of the kernel); none: the kernel itself (empty name).
 * Load the agent before the modules it should watch: it learns of modules from their load.
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#define AGENT_MAGIC	0x47414c4dU	/* "MLAG" */
#define AGENT_TEXT	216
#define AGENT_MODULES	64

static unsigned int port = 0x5a0;
module_param(port, uint, 0444);
MODULE_PARM_DESC(port, "the host's agent ports (16 from here)");

static bool active;
module_param(active, bool, 0444);
MODULE_PARM_DESC(active, "the host listens (mmiolab run --check) and the probes are in");

enum agent_kind {
	AGENT_MODULE_LOAD = 1,	/* a core text, b its size, c init text, d its size; module */
	AGENT_MODULE_LIVE = 2,	/* init done, its text freed; module */
	AGENT_MODULE_GOING = 3,	/* unloaded (after its exit, or a failed init); module */
	AGENT_CLAIM = 4,	/* a start, b size, d caller; owner, resource name */
	AGENT_RELEASE = 5,	/* a start, b size, d caller; owner */
	AGENT_MAP = 6,		/* a phys (port), b size, c virt (cookie), d caller; owner */
	AGENT_UNMAP = 7,	/* c virt (cookie), d caller; owner */
	AGENT_TEST = 8,		/* test name, empty: none */
};

/* One record, little-endian; `len` counts the header, the numbers and the used text. */
struct agent_record {
	u16 kind;
	u16 len;
	u32 space;		/* 0 MMIO, 1 I/O ports */
	u64 a, b, c, d;
	char text[AGENT_TEXT];	/* NUL-terminated strings, one after the other */
} __packed;

static struct agent_record *buf;
static DEFINE_RAW_SPINLOCK(send_lock);

static void agent_send(u16 kind, u32 space, u64 a, u64 b, u64 c, u64 d,
		       const char *s1, const char *s2)
{
	size_t n1 = s1 ? strnlen(s1, 100) : 0, n2 = s2 ? strnlen(s2, 100) : 0;
	unsigned long flags;

	raw_spin_lock_irqsave(&send_lock, flags);
	buf->kind = kind;
	buf->space = space;
	buf->a = a;
	buf->b = b;
	buf->c = c;
	buf->d = d;
	memcpy(buf->text, s1 ? s1 : "", n1);
	buf->text[n1] = 0;
	memcpy(buf->text + n1 + 1, s2 ? s2 : "", n2);
	buf->text[n1 + 1 + n2] = 0;
	buf->len = offsetof(struct agent_record, text) + n1 + n2 + 2;
	outl(buf->len, port + 8);
	raw_spin_unlock_irqrestore(&send_lock, flags);
}

/* Module text ranges, for the owner of a claim (the host keeps its own table). */
struct agent_module {
	struct module *mod;
	unsigned long core, core_len, init, init_len;
};
static struct agent_module mods[AGENT_MODULES];
static DEFINE_RAW_SPINLOCK(mods_lock);

static const char *module_at(unsigned long addr)
{
	const char *name = NULL;
	unsigned long flags;
	int i;

	raw_spin_lock_irqsave(&mods_lock, flags);
	for (i = 0; i < AGENT_MODULES && !name; i++) {
		struct agent_module *m = &mods[i];

		if (m->mod && ((addr >= m->core && addr - m->core < m->core_len) ||
			       (addr >= m->init && addr - m->init < m->init_len)))
			name = m->mod->name;
	}
	raw_spin_unlock_irqrestore(&mods_lock, flags);
	return name;
}

/*
 * The owner of the call that reached a probed function: the first word on the stack,
 * from the probe's stack pointer up to the top of the task's stack (or the end of the
 * page on another stack), that lies in a module's text. *caller: that address, or the
 * direct caller's return address when no module is found (the kernel's own code).
 */
static const char *owner_of(struct pt_regs *regs, u64 *caller)
{
	unsigned long sp = regs->sp, base = (unsigned long)task_stack_page(current);
	unsigned long top = base + THREAD_SIZE;
	unsigned long *p;

	if (sp < base || sp >= top)
		top = (sp | (PAGE_SIZE - 1)) + 1;
	*caller = *(unsigned long *)sp;
	for (p = (unsigned long *)sp; (unsigned long)(p + 1) <= top; p++) {
		const char *name = module_at(*p);

		if (name) {
			*caller = *p;
			return name;
		}
	}
	return "";
}

static u32 space_of(struct resource *parent)
{
	return parent && (parent->flags & IORESOURCE_IO) ? 1 : 0;
}

/* What an entry handler saw, for the return handler. */
struct call {
	u64 start, size, caller;
	u32 space;
	const char *owner, *name;
};

static int request_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call *c = (struct call *)ri->data;

	c->space = space_of((struct resource *)regs->di);
	c->start = regs->si;
	c->size = regs->dx;
	c->name = (const char *)regs->cx;
	c->owner = owner_of(regs, &c->caller);
	return 0;
}

static int request_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call *c = (struct call *)ri->data;

	if (regs_return_value(regs))
		agent_send(AGENT_CLAIM, c->space, c->start, c->size, 0, c->caller, c->owner, c->name);
	return 0;
}

static int release_pre(struct kprobe *p, struct pt_regs *regs)
{
	u64 caller;
	const char *owner = owner_of(regs, &caller);

	agent_send(AGENT_RELEASE, space_of((struct resource *)regs->di), regs->si, regs->dx, 0,
		   caller, owner, NULL);
	return 0;
}

static int map_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct call *c = (struct call *)ri->data;

	c->start = regs->di;
	c->size = regs->si;
	c->owner = owner_of(regs, &c->caller);
	return 0;
}

static int map_return(struct kretprobe_instance *ri, struct pt_regs *regs, u32 space)
{
	struct call *c = (struct call *)ri->data;
	unsigned long virt = regs_return_value(regs);

	if (virt)
		agent_send(AGENT_MAP, space, c->start, c->size, virt, c->caller, c->owner, NULL);
	return 0;
}

static int ioremap_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return map_return(ri, regs, 0);
}

static int ioport_map_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return map_return(ri, regs, 1);
}

static int unmap_pre(struct kprobe *p, struct pt_regs *regs, u32 space)
{
	u64 caller;
	const char *owner = owner_of(regs, &caller);

	agent_send(AGENT_UNMAP, space, 0, 0, regs->di, caller, owner, NULL);
	return 0;
}

static int iounmap_pre(struct kprobe *p, struct pt_regs *regs)
{
	return unmap_pre(p, regs, 0);
}

static int ioport_unmap_pre(struct kprobe *p, struct pt_regs *regs)
{
	return unmap_pre(p, regs, 1);
}

#define RETPROBE(sym, entry, ret) { \
	.kp.symbol_name = sym, .entry_handler = entry, .handler = ret, \
	.data_size = sizeof(struct call), .maxactive = 16 }

static struct kretprobe retprobes[] = {
	RETPROBE("__request_region", request_entry, request_return),
	RETPROBE("ioremap", map_entry, ioremap_return),
	RETPROBE("ioremap_uc", map_entry, ioremap_return),
	RETPROBE("ioremap_wc", map_entry, ioremap_return),
	RETPROBE("ioremap_wt", map_entry, ioremap_return),
	RETPROBE("ioremap_cache", map_entry, ioremap_return),
	RETPROBE("ioremap_prot", map_entry, ioremap_return),
	RETPROBE("ioport_map", map_entry, ioport_map_return),
};
static bool retprobe_in[ARRAY_SIZE(retprobes)];

static struct kprobe probes[] = {
	{ .symbol_name = "__release_region", .pre_handler = release_pre },
	{ .symbol_name = "iounmap", .pre_handler = iounmap_pre },
	{ .symbol_name = "ioport_unmap", .pre_handler = ioport_unmap_pre },
};
static bool probe_in[ARRAY_SIZE(probes)];

static int agent_module_event(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	unsigned long flags;
	int i, slot = -1;

	raw_spin_lock_irqsave(&mods_lock, flags);
	for (i = 0; i < AGENT_MODULES; i++) {
		if (mods[i].mod == mod || (slot < 0 && !mods[i].mod && state == MODULE_STATE_COMING))
			slot = i;
		if (mods[i].mod == mod)
			break;
	}
	if (slot >= 0) {
		struct agent_module *m = &mods[slot];

		switch (state) {
		case MODULE_STATE_COMING:
			m->mod = mod;
			m->core = (unsigned long)mod->core_layout.base;
			m->core_len = mod->core_layout.text_size;
			m->init = (unsigned long)mod->init_layout.base;
			m->init_len = mod->init_layout.text_size;
			break;
		case MODULE_STATE_LIVE:
			m->init = m->init_len = 0;
			break;
		case MODULE_STATE_GOING:
			m->mod = NULL;
			break;
		}
	}
	raw_spin_unlock_irqrestore(&mods_lock, flags);
	if (slot < 0 && state == MODULE_STATE_COMING)
		pr_warn("mmiolab_agent: more than %d modules: %s is not tracked here\n",
			AGENT_MODULES, mod->name);

	switch (state) {
	case MODULE_STATE_COMING:
		agent_send(AGENT_MODULE_LOAD, 0, (unsigned long)mod->core_layout.base,
			   mod->core_layout.text_size, (unsigned long)mod->init_layout.base,
			   mod->init_layout.text_size, mod->name, NULL);
		break;
	case MODULE_STATE_LIVE:
		agent_send(AGENT_MODULE_LIVE, 0, 0, 0, 0, 0, mod->name, NULL);
		break;
	case MODULE_STATE_GOING:
		agent_send(AGENT_MODULE_GOING, 0, 0, 0, 0, 0, mod->name, NULL);
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block agent_nb = {
	.notifier_call = agent_module_event,
};

static int test_set(const char *val, const struct kernel_param *kp)
{
	char name[100];

	strscpy(name, val, sizeof(name));
	if (active)
		agent_send(AGENT_TEST, 0, 0, 0, 0, 0, strim(name), NULL);
	return 0;
}

static const struct kernel_param_ops test_ops = {
	.set = test_set,
};
module_param_cb(test, &test_ops, NULL, 0200);
MODULE_PARM_DESC(test, "the name of the test that starts now (empty: none)");

static void agent_unregister(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(probes); i++)
		if (probe_in[i])
			unregister_kprobe(&probes[i]);
	for (i = 0; i < ARRAY_SIZE(retprobes); i++)
		if (retprobe_in[i])
			unregister_kretprobe(&retprobes[i]);
}

static int __init agent_init(void)
{
	phys_addr_t phys;
	int i, err, in = 0;

	if (inl(port + 0xc) != AGENT_MAGIC) {
		pr_info("mmiolab_agent: no agent port at %#x (the host runs without --check): idle\n",
			port);
		return 0;
	}
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	phys = virt_to_phys(buf);
	outl(lower_32_bits(phys), port);
	outl(upper_32_bits(phys), port + 4);
	active = true;
	err = register_module_notifier(&agent_nb);
	if (err) {
		pr_err("mmiolab_agent: register_module_notifier: %d\n", err);
		goto fail;
	}
	for (i = 0; i < ARRAY_SIZE(retprobes); i++) {
		err = register_kretprobe(&retprobes[i]);
		retprobe_in[i] = !err;
		in += !err;
		if (err)
			pr_warn("mmiolab_agent: no kretprobe on %s: %d\n",
				retprobes[i].kp.symbol_name, err);
	}
	for (i = 0; i < ARRAY_SIZE(probes); i++) {
		err = register_kprobe(&probes[i]);
		probe_in[i] = !err;
		in += !err;
		if (err)
			pr_warn("mmiolab_agent: no kprobe on %s: %d\n", probes[i].symbol_name, err);
	}
	if (!retprobe_in[0] || !probe_in[0]) {
		pr_err("mmiolab_agent: cannot probe __request_region/__release_region (CONFIG_KPROBES?)\n");
		agent_unregister();
		unregister_module_notifier(&agent_nb);
		err = -ENOSYS;
		goto fail;
	}
	pr_info("mmiolab_agent: reporting to the host at port %#x (%d probes)\n", port, in);
	return 0;
fail:
	active = false;
	kfree(buf);
	buf = NULL;
	return err;
}

static void __exit agent_exit(void)
{
	if (!active)
		return;
	agent_unregister();
	unregister_module_notifier(&agent_nb);
	active = false;
	kfree(buf);
}

module_init(agent_init);
module_exit(agent_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmiolab checker agent: module text, claims, mappings and tests to the host");
