/* SPDX-License-Identifier: MIT */
/*
 * rprockit stand-in remote core: a small RPMsg remote for the emulated
 * i.MX8M Plus, run by the fourth Cortex-A53 in place of the M7 (QEMU models
 * no M7).  Written from the specifications, not from any RPMsg library:
 *
 * - resource table: Linux 6.1 include/linux/remoteproc.h (struct
 *   resource_table, fw_rsc_vdev, fw_rsc_vdev_vring), one vdev
 *   (VIRTIO_ID_RPMSG 7, feature VIRTIO_RPMSG_F_NS) with two vrings that
 *   Linux allocates in vdev0vring0/1 and writes back (da) into this table;
 * - split virtqueues: OASIS "Virtual I/O Device (VIRTIO) Version 1.1",
 *   2.6 Split Virtqueues, in the legacy layout of 2.6.2 (descriptor table,
 *   available ring, used ring aligned to the vring's align); vring 0 carries
 *   messages to Linux (Linux's rx queue), vring 1 messages from Linux
 *   (Linux 6.1 drivers/rpmsg/virtio_rpmsg_bus.c rpmsg_probe(): vqs "input",
 *   "output");
 * - RPMsg: struct rpmsg_hdr (src, dst, reserved, len, flags, 16 bytes) and
 *   the name-service message (name[32], addr, flags) sent to address 53
 *   (drivers/rpmsg/virtio_rpmsg_bus.c, drivers/rpmsg/rpmsg_ns.c);
 * - the MU: the register layout of the i.MX8M Plus MU (reference manual, MU
 *   chapter; the bits as Linux 6.1 drivers/mailbox/imx-mailbox.c uses them
 *   for "fsl,imx6sx-mu": TEn bit 20+3-n, RFn bit 24+3-n of SR; TIEn, RIEn the
 *   same bits of CR), in a RAM page (MU_BASE) this core serves by polling.
 *
 * It announces three channels: "rpmsg-tty" (the name mainline rpmsg_tty
 * binds, drivers/tty/rpmsg_tty.c), "rpmsg-virtual-tty-channel" (NXP's
 * imx_rpmsg_tty name) and "rpmsg-raw" (rpmsg_char's default endpoint,
 * drivers/rpmsg/rpmsg_char.c), and echoes every message on each.  Two
 * messages are commands: "rprockit-status" answers with the image's tag and
 * how often it started (a boot record outside every loaded segment survives
 * reloads); "rprockit-restart" restarts the image behind Linux's back (as a
 * watchdog reset or a JTAG re-flash of an M core does), so it announces its
 * channels again while Linux still holds them.
 *
 * Built with -DSTANDIN_LEGACY it speaks the transport of NXP's vendor
 * imx_rpmsg instead (NXP linux-imx drivers/rpmsg/imx_rpmsg.c, 5.15.71), for
 * a vendor kernel whose DT has an "fsl,imx8mq-rpmsg" node: no resource table
 * (imx_rproc only loads and starts the image; imx_rpmsg creates the vdev
 * itself), the two vrings of vdev 0 at the fixed addresses of that node's
 * reg (set_vring_phy_buf(): vring 0 at the base, vring 1 at base + 0x8000),
 * each RPMSG_NUM_BUFS / 2 = 256 entries aligned to RPMSG_VRING_ALIGN 4096
 * (rp_find_vq()), zeroed and filled by Linux when the vdev registers; the
 * link is up at Linux's first kick of vring 0 (virtio_rpmsg_bus.c
 * rpmsg_probe() kicks its rx queue once its buffers are in; the MU message
 * is the vq id << 16, imx_rpmsg_notify()), which the remote waits for
 * after every start before it announces its channels.  The rxdb doorbell
 * (general interrupt 1, used after an SCU partition reset) is never rung.
 *
 * It runs at EL1 under the EL3 monitor's EL2 hold code (firmware/el3-monitor
 * remote_hold), which takes its timer tick and the stop at EL2.  Memory is
 * Device-nGnRnE with the MMU off: every access is naturally aligned (built
 * with -mstrict-align), payloads are copied byte by byte.
 */
#include <stddef.h>
#include <stdint.h>

#ifndef STANDIN_TAG
#define STANDIN_TAG "a"
#endif

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define REG32(a) (*(volatile u32 *)(uintptr_t)(a))

/* the stand-in MU page (kernel_configs/dts/imx8mp-evk-rproc-qemu.dts mu_standin) */
#define MU_BASE 0x00960000u
#define MU_TR(n) (MU_BASE + 0x00u + 4u * (n))
#define MU_RR(n) (MU_BASE + 0x10u + 4u * (n))
#define MU_SR (MU_BASE + 0x20u)
#define MU_CR (MU_BASE + 0x24u)
#define MU_CHAN 1u /* imx8mp-cm7 mboxes = <&mu_standin 0 1>, <&mu_standin 1 1> */
#define MU_TE(n) (1u << (20u + 3u - (n)))
#define MU_RF(n) (1u << (24u + 3u - (n)))
#define MU_TIE(n) MU_TE(n)
#define MU_RIE(n) MU_RF(n)

/* GICv3 distributor (QEMU 10 hw/arm/fsl-imx8mp.c) and the MU's SPI 88 */
#define GICD_BASE 0x38800000u
#define MU_INTID (32u + 88u)
#define GICD_ISPENDR(i) (GICD_BASE + 0x200u + 4u * ((i) / 32u))
#define GICD_ISACTIVER(i) (GICD_BASE + 0x300u + 4u * ((i) / 32u))
#define GIC_BIT(i) (1u << ((i) % 32u))
#define POLL_TICKS 800u /* 100 us at CNTFRQ 8 MHz */

/* the EL3 monitor's stop request word (firmware/el3-monitor remote_stop) */
#define STOP_REQUEST 0x0097F004u

/* resource table, Linux include/linux/remoteproc.h */
#define RSC_VDEV 3u
#define FW_RSC_ADDR_ANY 0xffffffffu
#define VIRTIO_ID_RPMSG 7u
#define VIRTIO_RPMSG_F_NS 0u
#define VIRTIO_CONFIG_S_DRIVER_OK 4u
#define VRING_ALIGN 4096u
#define VRING_NUM 16u

/* the vrings of imx_rpmsg's vdev 0: reg of the "fsl,imx8mq-rpmsg" node of
 * kernel_configs/dts/nxp-5.15/imx8mp-evk-standin-qemu.dts (vdev0vring0/1 of
 * NXP's imx8mp-evk-rpmsg.dts), laid out as imx_rpmsg.c set_vring_phy_buf()
 * and rp_find_vq() do */
#define LEGACY_VRING0 0x55000000u
#define LEGACY_VRING_STRIDE 0x8000u
#define LEGACY_VRING_NUM 256u /* RPMSG_NUM_BUFS / 2 */
#define LEGACY_RX_VQ 0u       /* Linux's rx queue, base_vq_id 0 + index 0 */

struct fw_rsc_vdev_vring {
	u32 da, align, num, notifyid, pa;
} __attribute__((packed));

struct fw_rsc_vdev {
	u32 id, notifyid, dfeatures, gfeatures, config_len;
	u8 status, num_of_vrings, reserved[2];
	struct fw_rsc_vdev_vring vring[2];
} __attribute__((packed));

struct standin_rsc_table {
	u32 ver, num, reserved[2];
	u32 offset[1];
	u32 vdev_type;
	struct fw_rsc_vdev vdev;
} __attribute__((packed, aligned(8)));

#ifndef STANDIN_LEGACY
__attribute__((section(".resource_table"), used))
volatile struct standin_rsc_table resource_table = {
	.ver = 1,
	.num = 1,
	.offset = {offsetof(struct standin_rsc_table, vdev_type)},
	.vdev_type = RSC_VDEV,
	.vdev = {
		.id = VIRTIO_ID_RPMSG,
		.dfeatures = 1u << VIRTIO_RPMSG_F_NS,
		.num_of_vrings = 2,
		.vring = {
			{FW_RSC_ADDR_ANY, VRING_ALIGN, VRING_NUM, 0, 0},
			{FW_RSC_ADDR_ANY, VRING_ALIGN, VRING_NUM, 1, 0},
		},
	},
};
#endif

/* split virtqueue, VIRTIO 1.1 2.6.5 - 2.6.8 */
struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags, next;
};

struct vring_used_elem {
	u32 id, len;
};

struct vq {
	volatile struct vring_desc *desc;
	volatile u16 *avail; /* flags, idx, ring[num] */
	volatile u16 *used_hdr; /* flags, idx */
	volatile struct vring_used_elem *used_ring;
	u32 num;
	u16 next_avail;
};

/* RPMsg, drivers/rpmsg/virtio_rpmsg_bus.c */
#define RPMSG_NS_ADDR 53u
#define RPMSG_HDR_LEN 16u
#define RPMSG_BUF_SIZE 512u
#define RPMSG_NAME_SIZE 32u

static const struct {
	const char *name;
	u32 addr;
} channels[] = {
	{"rpmsg-tty", 0x400},
	{"rpmsg-virtual-tty-channel", 0x401},
	{"rpmsg-raw", 0x402},
};
#define NCHANNELS (sizeof(channels) / sizeof(channels[0]))

/* starts of this image, across loads: in no loaded segment (standin.ld) */
struct boot_record {
	u32 magic, starts;
};
#define BOOT_MAGIC 0x52504b42u /* "BKPR" */
__attribute__((section(".boot_record"))) volatile struct boot_record boot_record;

static struct {
	struct vq to_linux, from_linux;
	u32 starts;
	int irq_in_flight; /* the MU interrupt raised, Linux's handler not yet done */
	int rx_kicked; /* Linux kicked its rx queue (vq id 0) since this start */
	int kick_linux;
	int restart;
} st;

void psci_cpu_off(void);
void standin_restart(void) __attribute__((noreturn));
void standin_main(void);

void *memset(void *d, int c, size_t n)
{
	volatile u8 *p = d;

	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	volatile u8 *p = d;
	const volatile u8 *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

static inline void dmb(void)
{
	__asm__ volatile("dmb sy" ::: "memory");
}

static u64 counter(void)
{
	u64 v;

	__asm__ volatile("isb; mrs %0, cntpct_el0" : "=r"(v));
	return v;
}

/* The tick: the EL1 physical timer (PPI 30), which the monitor's hold code
 * enabled in this core's redistributor and takes at EL2 (arming it one tick
 * ahead there), ends the WFI.  PSTATE.I stays set. */
static void sleep_tick(void)
{
	__asm__ volatile("msr cntp_tval_el0, %0\n\tmov x1, #1\n\tmsr cntp_ctl_el0, x1\n\t"
			 "isb\n\tdsb sy\n\twfi" :: "r"((u64)POLL_TICKS) : "x1", "memory");
}

static int stop_requested(void)
{
	return REG32(STOP_REQUEST) != 0;
}

static void check_stop(void)
{
	if (stop_requested()) {
		__asm__ volatile("msr cntp_ctl_el0, xzr\n\tisb" ::: "memory");
		psci_cpu_off();
		for (;;)
			__asm__ volatile("wfi");
	}
}

/* -- the MU page: this core is side B; Linux (side A) owns TR and CR -------------- */

static int mu_irq_idle(void)
{
	return !(REG32(GICD_ISPENDR(MU_INTID)) & GIC_BIT(MU_INTID)) &&
	       !(REG32(GICD_ISACTIVER(MU_INTID)) & GIC_BIT(MU_INTID));
}

static void mu_raise(void)
{
	dmb();
	REG32(GICD_ISPENDR(MU_INTID)) = GIC_BIT(MU_INTID);
	st.irq_in_flight = 1;
}

/* Linux's kick (a write to TR1 with TIE1 set) -> nonzero; answers with TE1 */
static int mu_poll(void)
{
	int kicked = 0;

	if (st.irq_in_flight) {
		if (!mu_irq_idle())
			return 0;
		/* Linux's handler ran: it read RR1 (RF1 clears on that read on the
		 * real MU) and took TE1 (clearing TIE1) */
		st.irq_in_flight = 0;
		REG32(MU_SR) &= ~MU_RF(MU_CHAN);
	}
	if (REG32(MU_CR) & MU_TIE(MU_CHAN)) {
		/* the vq id << 16 (imx_rproc_kick(), imx_rpmsg_notify()) */
		if ((REG32(MU_TR(MU_CHAN)) >> 16) == LEGACY_RX_VQ)
			st.rx_kicked = 1;
		REG32(MU_SR) |= MU_TE(MU_CHAN);
		kicked = 1;
		if (st.kick_linux && (REG32(MU_CR) & MU_RIE(MU_CHAN))) {
			REG32(MU_RR(MU_CHAN)) = 0;
			REG32(MU_SR) |= MU_RF(MU_CHAN);
			st.kick_linux = 0;
		}
		mu_raise();
	} else if (st.kick_linux && (REG32(MU_CR) & MU_RIE(MU_CHAN))) {
		REG32(MU_RR(MU_CHAN)) = 0;
		REG32(MU_SR) |= MU_RF(MU_CHAN);
		st.kick_linux = 0;
		mu_raise();
	}
	return kicked;
}

/* -- virtqueues ------------------------------------------------------------------- */

#ifndef STANDIN_LEGACY
static volatile struct fw_rsc_vdev *vdev(void)
{
	return &resource_table.vdev;
}
#endif

static void vq_init(struct vq *q, uintptr_t base, u32 num, u32 align)
{
	uintptr_t used;

	q->num = num;
	q->desc = (volatile struct vring_desc *)base;
	q->avail = (volatile u16 *)(base + 16u * num);
	used = base + 16u * num + 2u * (3u + num);
	used = (used + align - 1u) & ~(uintptr_t)(align - 1u);
	q->used_hdr = (volatile u16 *)used;
	q->used_ring = (volatile struct vring_used_elem *)(used + 4u);
	/* what this side consumed before (0 after Linux zeroed the vring; more
	 * after a restart behind Linux's back) */
	q->next_avail = q->used_hdr[1];
}

static void vq_put_used(struct vq *q, u16 head, u32 len)
{
	u16 idx = q->used_hdr[1];

	q->used_ring[idx % q->num].id = head;
	q->used_ring[idx % q->num].len = len;
	dmb();
	q->used_hdr[1] = (u16)(idx + 1u);
	dmb();
}

/* send one message to Linux in one of its rx buffers; 0 when none is free */
static int rpmsg_send(u32 src, u32 dst, const volatile u8 *data, u32 len)
{
	struct vq *q = &st.to_linux;
	volatile u8 *buf;
	u16 head;
	u32 i;

	dmb();
	if (q->next_avail == q->avail[1])
		return 0;
	head = q->avail[2 + q->next_avail % q->num];
	q->next_avail++;
	buf = (volatile u8 *)(uintptr_t)q->desc[head].addr;
	if (len > q->desc[head].len - RPMSG_HDR_LEN)
		len = q->desc[head].len - RPMSG_HDR_LEN;
	*(volatile u32 *)(buf + 0) = src;
	*(volatile u32 *)(buf + 4) = dst;
	*(volatile u32 *)(buf + 8) = 0;
	*(volatile u16 *)(buf + 12) = (u16)len;
	*(volatile u16 *)(buf + 14) = 0;
	for (i = 0; i < len; i++)
		buf[RPMSG_HDR_LEN + i] = data[i];
	vq_put_used(q, head, RPMSG_HDR_LEN + len);
	st.kick_linux = 1;
	return 1;
}

static int send_until_done(u32 src, u32 dst, const volatile u8 *data, u32 len)
{
	u64 deadline = counter() + 8000000u; /* 1 s */

	while (!rpmsg_send(src, dst, data, len)) {
		if (counter() > deadline || stop_requested())
			return 0;
		mu_poll();
		sleep_tick();
	}
	return 1;
}

static void announce(void)
{
	u8 ns[RPMSG_NAME_SIZE + 8] __attribute__((aligned(8)));
	u32 i, j;

	for (i = 0; i < NCHANNELS; i++) {
		memset(ns, 0, sizeof(ns));
		for (j = 0; channels[i].name[j] && j < RPMSG_NAME_SIZE - 1; j++)
			ns[j] = (u8)channels[i].name[j];
		*(u32 *)(ns + RPMSG_NAME_SIZE) = channels[i].addr; /* ns is 8-byte aligned */
		*(u32 *)(ns + RPMSG_NAME_SIZE + 4) = 0;            /* RPMSG_NS_CREATE */
		send_until_done(channels[i].addr, RPMSG_NS_ADDR, ns, sizeof(ns));
	}
}

static u32 put_str(u8 *out, u32 at, const char *s)
{
	while (*s)
		out[at++] = (u8)*s++;
	return at;
}

static u32 put_dec(u8 *out, u32 at, u32 v)
{
	char tmp[12];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10u);
		v /= 10u;
	} while (v);
	while (n)
		out[at++] = (u8)tmp[--n];
	return at;
}

static int starts_with(const volatile u8 *p, u32 len, const char *word)
{
	u32 i;

	for (i = 0; word[i]; i++)
		if (i >= len || p[i] != (u8)word[i])
			return 0;
	return 1;
}

static void handle(u32 src, u32 dst, const volatile u8 *payload, u32 len)
{
	u8 out[96] __attribute__((aligned(8)));
	u32 n, i;

	for (i = 0; i < NCHANNELS && channels[i].addr != dst; i++)
		;
	if (i == NCHANNELS)
		return;
	if (starts_with(payload, len, "rprockit-status")) {
		n = put_str(out, 0, "rprockit-standin " STANDIN_TAG " starts ");
		n = put_dec(out, n, st.starts);
		n = put_str(out, n, "\n");
		send_until_done(dst, src, out, n);
	} else if (starts_with(payload, len, "rprockit-restart")) {
		st.restart = 1;
	} else {
		send_until_done(dst, src, payload, len);
	}
}

/* messages from Linux: each buffer goes back to Linux's tx queue as used */
static void serve_from_linux(void)
{
	struct vq *q = &st.from_linux;
	volatile u8 *buf;
	u16 head;
	u32 blen, mlen;

	dmb();
	while (q->next_avail != q->avail[1]) {
		head = q->avail[2 + q->next_avail % q->num];
		q->next_avail++;
		buf = (volatile u8 *)(uintptr_t)q->desc[head].addr;
		blen = q->desc[head].len;
		mlen = *(volatile u16 *)(buf + 12);
		if (blen >= RPMSG_HDR_LEN && mlen <= blen - RPMSG_HDR_LEN)
			handle(*(volatile u32 *)(buf + 0), *(volatile u32 *)(buf + 4),
			       buf + RPMSG_HDR_LEN, mlen);
		vq_put_used(q, head, blen);
		st.kick_linux = 1;
		dmb();
	}
}

/* Linux's vdev is ready: DRIVER_OK in the resource table (remoteproc), or its
 * first kick of vring 0 since this start (imx_rpmsg: no resource table) */
static int driver_ok(void)
{
#ifdef STANDIN_LEGACY
	return st.rx_kicked;
#else
	return (vdev()->status & VIRTIO_CONFIG_S_DRIVER_OK) != 0;
#endif
}

static void vqs_init(void)
{
#ifdef STANDIN_LEGACY
	vq_init(&st.to_linux, LEGACY_VRING0, LEGACY_VRING_NUM, VRING_ALIGN);
	vq_init(&st.from_linux, LEGACY_VRING0 + LEGACY_VRING_STRIDE, LEGACY_VRING_NUM,
		VRING_ALIGN);
#else
	vq_init(&st.to_linux, vdev()->vring[0].da, vdev()->vring[0].num, vdev()->vring[0].align);
	vq_init(&st.from_linux, vdev()->vring[1].da, vdev()->vring[1].num,
		vdev()->vring[1].align);
#endif
}

void standin_main(void)
{
	memset(&st, 0, sizeof(st));
	if (boot_record.magic != BOOT_MAGIC) {
		boot_record.magic = BOOT_MAGIC;
		boot_record.starts = 0;
	}
	boot_record.starts = boot_record.starts + 1u;
	st.starts = boot_record.starts;

	for (;;) {
		/* Linux sets DRIVER_OK (legacy: kicks vring 0) once its rx buffers
		 * are in vring 0 */
		while (!driver_ok()) {
			check_stop();
			mu_poll();
			sleep_tick();
		}
		vqs_init();
		announce();
		while (driver_ok() && !st.restart) {
			check_stop();
			mu_poll();
			serve_from_linux();
			if (st.kick_linux)
				mu_poll();
			sleep_tick();
		}
		if (st.restart) {
			/* let Linux see the answer to everything before the restart */
			while (st.irq_in_flight || st.kick_linux) {
				check_stop();
				mu_poll();
				sleep_tick();
			}
			standin_restart();
		}
	}
}
