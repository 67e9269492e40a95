/* SPDX-License-Identifier: MIT */
/*
 * rprockit EL3 monitor: a minimal stand-in for TF-A's BL31 on QEMU's
 * emulated i.MX8M Plus EVK (imx8mp-evk), for the emulated board only.
 *
 * QEMU answers every SMC it does not emulate itself with -1 (SMCCC
 * NOT_SUPPORTED), so imx_rproc's IMX_SIP_RPROC "STARTED" query reads non-zero
 * ("running") and STOP fails.  Booted through "-device loader,...,cpu-num=0"
 * instead of -kernel, the Cortex-A53 starts here at EL3 with QEMU's own PSCI
 * off; this monitor then provides, through SMC from EL2/EL1:
 *
 * - PSCI 1.0 for the one CPU Linux uses (QEMU -smp 1), after the Arm
 *   "Power State Coordination Interface" specification (DEN0022): VERSION,
 *   FEATURES, MIGRATE_INFO_TYPE (2: no trusted OS), CPU_ON (ALREADY_ON for
 *   CPU 0, INVALID_PARAMETERS otherwise), CPU_OFF, SYSTEM_OFF and
 *   SYSTEM_RESET (both park the CPU), and SMCCC_VERSION 1.1 (DEN0028);
 * - NXP's SiP service IMX_SIP_RPROC, function ID 0xC2000005, with x1 =
 *   0 START, 1 STARTED, 2 STOP, as Linux 6.1 drivers/remoteproc/imx_rproc.c
 *   calls it (IMX_SIP_RPROC_START/_STARTED/_STOP) and as TF-A's i.MX8M SiP
 *   handler answers it (plat/imx/imx8m, imx_src_handler(), IMX_SIP_SRC:
 *   START releases the M core and returns 0, STARTED returns 1 when it runs
 *   and 0 when it is held, STOP holds it and returns 0 with a second result
 *   of 0 (the core was idle, no forced stop), other x1 SMC_UNK).
 *   The M7 is held at reset, as TF-A finds it.  QEMU models no M7, SRC or
 *   GPR for it, so the state is a word in this monitor's memory.
 *
 * The stand-in remote core (docs/design.md, "The stand-in remote core"):
 * QEMU models no M7, so the fourth Cortex-A53 (MPIDR 3, QEMU -smp 4; Linux
 * runs on CPU 0) plays it.  QEMU's imx8mp-evk has no SRC model that could
 * power a core on, so the target gives QEMU's own PSCI the HVC conduit
 * ("-global cortex-a53-arm-cpu.psci-conduit=2"), which leaves every SMC to
 * this monitor; the monitor reaches QEMU's PSCI with HVC:
 * - START reads the image's vector table the way the M7 reads its own
 *   (word 0 initial SP, word 1 reset PC), at the base of the carveout
 *   m7_reserved (REMOTE_VECTOR: QEMU has no ITCM, where the M7 looks), and
 *   powers MPIDR 3 on (PSCI CPU_ON, at EL2, MMU off) in remote_hold, this
 *   monitor's EL2 code on that core, which enters the image at EL1 at the
 *   reset PC with SP and x0 = the initial SP.  A reset PC the A53 cannot run
 *   (a Thumb address of an M-core image, unaligned, outside m7_reserved)
 *   leaves the core off: "started" for imx_rproc, and idle, as an M7 with no
 *   reachable vector;
 * - STOP sets the stop request word (remote_stop, which a well-behaved image
 *   polls: it then powers its core off itself) and raises SGI 15 on that
 *   core, which EL2 takes whatever the image does (HCR_EL2.IMO: physical
 *   IRQs go to EL2, unmasked by the image's PSTATE); remote_hold then powers
 *   the core off (PSCI CPU_OFF), the stand-in's SRC hold.  STOP waits up to
 *   500 ms for PSCI AFFINITY_INFO OFF and reports a forced stop (x1 = 1)
 *   when the image did not stop by itself.
 * Without the HVC conduit an HVC here returns SMC_UNK and the core stays off.
 * The MU of the stand-in is a RAM page (MU_PAGE) this monitor resets to the
 * MU's reset value at boot: status TE0-3 set, control 0.
 *
 * Every other function ID returns SMC_UNK (-1).  Before dropping to EL2 at
 * the kernel entry (Linux Documentation/arm64/booting.rst: x0 = DTB, MMU off,
 * interrupts masked) it does what TF-A's BL31 does for a non-secure kernel on
 * GICv3: all interrupts to Group 1 non-secure, the redistributor of CPU 0
 * awake, system-register access to the CPU interface allowed below EL3.
 *
 * Addresses (QEMU 10 hw/arm/fsl-imx8mp.c, i.MX8M Plus reference manual memory
 * map): this image in OCRAM at 0x00970000 (where TF-A's BL31 runs on the real
 * i.MX8M Plus), GICD 0x38800000, GICR 0x38880000.  The kernel entry and the
 * DTB address are the words "kernel_entry" and "dtb_addr" below, set by the
 * linker script (monitor.ld).
 */
	.equ	GICD_BASE,	0x38800000
	.equ	GICR_BASE,	0x38880000
	.equ	GICR_SGI,	0x10000		/* SGI_base frame of a redistributor */
	.equ	GICD_CTLR,	0x0
	.equ	GICD_TYPER,	0x4
	.equ	GICD_IGROUPR,	0x80
	.equ	GICR_WAKER,	0x14
	.equ	GICR_IGROUPR0,	0x80

	.equ	PSCI_VERSION,		0x84000000
	.equ	PSCI_CPU_OFF,		0x84000002
	.equ	PSCI_CPU_ON_32,		0x84000003
	.equ	PSCI_CPU_ON_64,		0xC4000003
	.equ	PSCI_MIGRATE_INFO_TYPE,	0x84000006
	.equ	PSCI_SYSTEM_OFF,	0x84000008
	.equ	PSCI_SYSTEM_RESET,	0x84000009
	.equ	PSCI_FEATURES,		0x8400000A
	.equ	SMCCC_VERSION,		0x80000000
	.equ	IMX_SIP_RPROC,		0xC2000005
	.equ	PSCI_AFFINITY_INFO_64,	0xC4000004

	/* the stand-in remote core (see above) */
	.equ	REMOTE_MPIDR,		3
	.equ	REMOTE_VECTOR,		0x80000000	/* base of m7_reserved */
	.equ	REMOTE_VECTOR_END,	0x81000000	/* m7_reserved is 16 MiB */
	.equ	STOP_TIMEOUT_TICKS,	4000000		/* 500 ms at CNTFRQ 8 MHz */
	.equ	MU_PAGE,		0x00960000	/* OCRAM; the board DTS's MU node */
	.equ	MU_SR,			0x20
	.equ	MU_SR_RESET,		0x00F00000	/* TE0-3: transmit registers empty */
	.equ	GICR_TYPER,		0x8
	.equ	GICR_ISENABLER0,	0x100		/* in the SGI_base frame */
	.equ	GICR_ISPENDR0,		0x200		/* in the SGI_base frame */
	.equ	GICR_ICPENDR0,		0x280		/* in the SGI_base frame */
	.equ	REMOTE_GICR_SGI,	0x38880000 + 3 * 0x20000 + 0x10000
	.equ	STOP_SGI,		15
	.equ	TIMER_PPI,		30		/* EL1 physical timer (QEMU GTIMER_PHYS) */
	.equ	HOLD_TICK,		800		/* 100 us: the image's poll tick */
	.equ	COOPERATE_TICKS,	800000		/* 100 ms: a polling image stops itself */
	.equ	GICR_STRIDE,		0x20000		/* RD_base + SGI_base frames */

	.equ	SMC_UNK,		-1
	.equ	PSCI_INVALID_PARAMETERS, -2
	.equ	PSCI_ALREADY_ON,	-4

	.section .text.entry, "ax"
	.global	_start
_start:
	msr	daifset, #0xf
	ldr	x0, =vectors
	msr	vbar_el3, x0
	ldr	x0, =stack_top
	mov	sp, x0
	msr	cptr_el3, xzr			/* no FP/SIMD traps */
	msr	mdcr_el3, xzr
	/* SCR_EL3: NS, RES1 bits 4-5, HCE (HVC allowed), RW (EL2 is AArch64); SMD clear */
	mov	x0, #0x531
	msr	scr_el3, x0
	/* ICC_SRE_EL3: SRE | Enable (lower ELs may use the system registers) */
	mov	x0, #0x9
	msr	S3_6_C12_C12_5, x0
	isb
	bl	gic_nonsecure
	ldr	x1, =MU_PAGE
	ldr	w0, =MU_SR_RESET
	str	w0, [x1, #MU_SR]
	/* EL2 registers in a known state: SCTLR_EL2 RES1 bits, MMU off; HCR_EL2 RW */
	ldr	x0, =0x30c50830
	msr	sctlr_el2, x0
	mov	x0, #(1 << 31)
	msr	hcr_el2, x0
	/* drop to EL2h with DAIF masked at the kernel entry, x0 = DTB */
	mov	x0, #0x3c9
	msr	spsr_el3, x0
	ldr	x0, kernel_entry
	msr	elr_el3, x0
	ldr	x0, dtb_addr
	mov	x1, xzr
	mov	x2, xzr
	mov	x3, xzr
	eret

/* GICv3 as a non-secure kernel expects it (what TF-A's gicv3 driver sets up) */
gic_nonsecure:
	ldr	x1, =GICD_BASE
	/* ARE_S | ARE_NS | EnableGrp1NS | EnableGrp0 */
	mov	w0, #((1 << 4) | (1 << 5) | (1 << 1) | (1 << 0))
	str	w0, [x1, #GICD_CTLR]
	ldr	w2, [x1, #GICD_TYPER]
	and	w2, w2, #0x1f			/* ITLinesNumber: 32 * (N + 1) lines */
	mov	w3, #1				/* IGROUPR0 (SGIs/PPIs) is banked in GICR */
	mov	w0, #0xffffffff
1:	cmp	w3, w2
	b.hi	2f
	add	x4, x1, #GICD_IGROUPR
	str	w0, [x4, w3, uxtw #2]
	add	w3, w3, #1
	b	1b
	/* every CPU's redistributor (the stand-in remote core's too): awake,
	 * SGIs/PPIs Group 1 non-secure; GICR_TYPER.Last (bit 4) ends the list */
2:	ldr	x1, =GICR_BASE
3:	ldr	w0, [x1, #GICR_WAKER]
	bic	w0, w0, #(1 << 1)		/* ProcessorSleep */
	str	w0, [x1, #GICR_WAKER]
4:	ldr	w0, [x1, #GICR_WAKER]
	tbnz	w0, #2, 4b			/* ChildrenAsleep */
	add	x2, x1, #GICR_SGI
	mov	w0, #0xffffffff
	str	w0, [x2, #GICR_IGROUPR0]
	ldr	w0, [x1, #GICR_TYPER]
	add	x1, x1, #GICR_STRIDE
	tbz	w0, #4, 3b
	ret

/* SMC from a lower EL (AArch64): w0 function ID, x1-x3 arguments, result in x0
 * (and x1 for IMX_SIP_RPROC_STOP); x9-x11 and x30 are saved on the monitor
 * stack, and ELR_EL3/SPSR_EL3 too: an HVC that QEMU's PSCI does not take is
 * an exception to this monitor (hvc_unknown), which overwrites them */
smc_handler:
	stp	x9, x10, [sp, #-48]!		/* SMCCC 1.1: x4-x17 are preserved */
	stp	x11, x30, [sp, #16]
	mrs	x9, elr_el3
	mrs	x10, spsr_el3
	stp	x9, x10, [sp, #32]
	mrs	x9, esr_el3
	lsr	x9, x9, #26
	cmp	x9, #0x17			/* EC: SMC from AArch64 */
	b.ne	park				/* anything else is a monitor bug: stop */
	ldr	w9, =PSCI_VERSION
	cmp	w0, w9
	b.eq	ret_psci_1_0
	ldr	w9, =SMCCC_VERSION
	cmp	w0, w9
	b.eq	ret_smccc_1_1
	ldr	w9, =PSCI_FEATURES
	cmp	w0, w9
	b.eq	psci_features
	ldr	w9, =PSCI_MIGRATE_INFO_TYPE
	cmp	w0, w9
	b.eq	ret_two
	ldr	w9, =PSCI_CPU_ON_64
	cmp	w0, w9
	b.eq	cpu_on
	ldr	w9, =PSCI_CPU_ON_32
	cmp	w0, w9
	b.eq	cpu_on
	ldr	w9, =PSCI_CPU_OFF
	cmp	w0, w9
	b.eq	park
	ldr	w9, =PSCI_SYSTEM_OFF
	cmp	w0, w9
	b.eq	park
	ldr	w9, =PSCI_SYSTEM_RESET
	cmp	w0, w9
	b.eq	park
	ldr	w9, =IMX_SIP_RPROC
	cmp	w0, w9
	b.eq	sip_rproc
ret_unk:
	mov	x0, #SMC_UNK
	b	smc_return
ret_psci_1_0:
	mov	x0, #0x10000
	b	smc_return
ret_smccc_1_1:
	ldr	x0, =0x10001
	b	smc_return
ret_two:
	mov	x0, #2
	b	smc_return
ret_zero:
	mov	x0, xzr
	b	smc_return

psci_features:
	mov	w9, w1
	ldr	w10, =PSCI_VERSION
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =PSCI_FEATURES
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =PSCI_MIGRATE_INFO_TYPE
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =PSCI_CPU_ON_64
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =PSCI_CPU_OFF
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =PSCI_SYSTEM_OFF
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =PSCI_SYSTEM_RESET
	cmp	w9, w10
	b.eq	ret_zero
	ldr	w10, =SMCCC_VERSION
	cmp	w9, w10
	b.eq	ret_zero
	b	ret_unk

cpu_on:
	/* x1 = target MPIDR (Aff fields); only CPU 0 exists, and it is on */
	ldr	x9, =0xff00ffffff
	ands	x9, x1, x9
	b.eq	1f
	mov	x0, #PSCI_INVALID_PARAMETERS
	b	smc_return
1:	mov	x0, #PSCI_ALREADY_ON
	b	smc_return

sip_rproc:
	ldr	x9, =m_core_running
	cmp	x1, #0				/* IMX_SIP_RPROC_START */
	b.ne	1f
	mov	w10, #1
	str	w10, [x9]
	bl	remote_release
	b	ret_zero
1:	cmp	x1, #1				/* IMX_SIP_RPROC_STARTED */
	b.ne	2f
	ldr	w0, [x9]
	b	smc_return
2:	cmp	x1, #2				/* IMX_SIP_RPROC_STOP */
	b.ne	ret_unk
	str	wzr, [x9]
	/* x1 = 0: the core was idle; imx_rproc_stop() logs "Not in wfi, force
	 * stopped" when the second result is non-zero */
	bl	remote_park
	mov	x1, x0
	b	ret_zero

/* START: power the stand-in remote core on at the reset PC of the image's
 * vector table (x0 = its initial SP), or leave it off when the A53 cannot
 * run that PC.  Clobbers x0-x3, x9-x11. */
remote_release:
	mov	x9, x30
	ldr	x10, =remote_stop
	ldr	w0, [x10]
	cbz	w0, 2f
	bl	remote_wait_off			/* a core still on after a STOP that timed out */
2:	mov	x30, x9
	ldr	x11, =REMOTE_VECTOR
	ldr	w3, [x11]			/* word 0: initial SP */
	ldr	w2, [x11, #4]			/* word 1: reset PC */
	tst	w2, #3				/* a Thumb (M-core) or unaligned PC */
	b.ne	1f
	cmp	x2, x11
	b.lo	1f
	ldr	x10, =REMOTE_VECTOR_END
	cmp	x2, x10
	b.hs	1f
	ldr	x10, =remote_stop
	str	wzr, [x10]
	dsb	sy
	ldr	w0, =PSCI_CPU_ON_64
	mov	x1, #REMOTE_MPIDR
	ldr	x2, =remote_hold		/* x3: context (x0 there) = the initial SP */
	hvc	#0				/* QEMU's PSCI */
	ldr	x10, =remote_on_result
	str	w0, [x10]
1:	ret

/* STOP: ask the running image to power its core off and wait for it.
 * Returns x0 = 0 when the core is off, 1 when it ignored the request.
 * Clobbers x0-x3, x10, x11. */
remote_park:
	mov	x9, x30
	ldr	x10, =remote_stop
	mov	w0, #1
	str	w0, [x10]
	dsb	sy
	ldr	x10, =COOPERATE_TICKS
	bl	remote_wait_ticks
	cbz	x0, 1f				/* the image stopped by itself */
	ldr	x10, =REMOTE_GICR_SGI
	mov	w0, #(1 << STOP_SGI)
	str	w0, [x10, #GICR_ISPENDR0]	/* remote_hold takes it at EL2 */
	dsb	sy
	bl	remote_wait_off
	cbnz	x0, 2f
	mov	x0, #1				/* off, but forced */
	b	2f
1:	mov	x0, xzr
2:	mov	x30, x9
	ret

/* wait up to STOP_TIMEOUT_TICKS (remote_wait_off) or x10 ticks (remote_wait_ticks)
 * for the core to be off: x0 = 0 off, 1 still on.  Clobbers x0-x2, x10, x11. */
remote_wait_off:
	ldr	x10, =STOP_TIMEOUT_TICKS
remote_wait_ticks:
	mrs	x11, cntpct_el0
	add	x11, x11, x10
1:	ldr	w0, =PSCI_AFFINITY_INFO_64
	mov	x1, #REMOTE_MPIDR
	mov	x2, xzr
	hvc	#0
	cmp	x0, #1				/* OFF */
	b.eq	2f
	cmn	x0, #1				/* SMC_UNK: no QEMU PSCI, the core never ran */
	b.eq	2f
	mrs	x10, cntpct_el0
	cmp	x10, x11
	b.lo	1b
	mov	x0, #1
	ret
2:	mov	x0, xzr
	ret

/* remote_hold: this monitor's EL2 code on the stand-in remote core (powered on
 * here by QEMU's PSCI, MMU off, x0 = the image's initial SP).  It routes
 * physical IRQs to EL2, enables the stop SGI and the image's timer interrupt in
 * the core's redistributor, and enters the image at EL1 (EL1h, DAIF masked). */
remote_hold:
	msr	daifset, #0xf
	mov	x19, x0
	ldr	x0, =hold_vectors
	msr	vbar_el2, x0
	mov	x0, #0xf			/* ICC_SRE_EL2: SRE, DFB, DIB, Enable */
	msr	S3_4_C12_C9_5, x0
	isb
	mov	x0, #0xff
	msr	S3_0_C4_C6_0, x0		/* ICC_PMR_EL1 */
	mov	x0, #1
	msr	S3_0_C12_C12_7, x0		/* ICC_IGRPEN1_EL1 */
	ldr	x1, =REMOTE_GICR_SGI		/* this core's redistributor: it exists */
	mov	w0, #(1 << STOP_SGI)
	str	w0, [x1, #GICR_ICPENDR0]	/* no stop SGI left from the last STOP */
	ldr	w0, =((1 << STOP_SGI) | (1 << TIMER_PPI))
	str	w0, [x1, #GICR_ISENABLER0]
	mov	x0, #3				/* CNTHCTL_EL2: EL1 counter and timer access */
	msr	cnthctl_el2, x0
	msr	cntvoff_el2, xzr
	ldr	x0, =0x33ff			/* CPTR_EL2: no traps */
	msr	cptr_el2, x0
	ldr	x0, =((1 << 31) | (1 << 4))	/* HCR_EL2: RW (EL1 AArch64), IMO */
	msr	hcr_el2, x0
	ldr	x0, =0x30d00800			/* SCTLR_EL1: RES1 bits, MMU and caches off */
	msr	sctlr_el1, x0
	ldr	x1, =REMOTE_VECTOR
	ldr	w0, [x1, #4]			/* the reset PC START checked */
	msr	elr_el2, x0
	mov	x0, #0x3c5			/* EL1h, DAIF masked */
	msr	spsr_el2, x0
	msr	sp_el1, x19
	mov	x0, x19
	isb
	eret

/* IRQ from the image (EL1) to EL2: the stop SGI powers the core off; the
 * image's timer (the tick its WFI waits for) is armed again one tick ahead,
 * which drops it: so a tick taken between the image's arming and its WFI
 * still leaves a tick to end that WFI */
hold_irq:
	msr	tpidr_el2, x0			/* the image's x0; its flags are in SPSR_EL2 */
	mrs	x0, S3_0_C12_C12_0		/* ICC_IAR1_EL1 */
	msr	S3_0_C12_C12_1, x0		/* ICC_EOIR1_EL1 */
	cmp	x0, #STOP_SGI
	b.eq	1f
	cmp	x0, #TIMER_PPI
	b.ne	2f
	mov	x0, #HOLD_TICK
	msr	cntp_tval_el0, x0
2:	mrs	x0, tpidr_el2
	eret
1:	ldr	w0, =PSCI_CPU_OFF
	hvc	#0
	b	park

	.balign	0x800
hold_vectors:
	.rept	9
	b	park
	.balign	0x80
	.endr
	b	hold_irq			/* 0x480: IRQ, lower EL AArch64 */
	.balign	0x80
	.rept	6
	b	park
	.balign	0x80
	.endr

/* HVC at EL3 when QEMU's PSCI does not take it (no HVC conduit): SMC_UNK */
hvc_unknown:
	mrs	x0, esr_el3
	lsr	x0, x0, #26
	cmp	x0, #0x16			/* EC: HVC from AArch64 */
	b.ne	park
	mov	x0, #SMC_UNK
	eret

smc_return:
	ldp	x9, x10, [sp, #32]
	msr	elr_el3, x9
	msr	spsr_el3, x10
	ldp	x11, x30, [sp, #16]
	ldp	x9, x10, [sp], #48
	eret

park:
	wfi
	b	park

/* VBAR_EL3: 16 entries of 0x80 bytes; only "lower EL, AArch64, synchronous" is used */
	.balign	0x800
vectors:
	.rept	4
	b	park
	.balign	0x80
	.endr
	b	hvc_unknown			/* 0x200: synchronous, current EL with SP_ELx */
	.balign	0x80
	.rept	3
	b	park
	.balign	0x80
	.endr
	b	smc_handler			/* 0x400: synchronous, lower EL AArch64 */
	.balign	0x80
	.rept	7
	b	park
	.balign	0x80
	.endr

	.section .rodata.boot, "a"
	.balign	8
	.global	kernel_entry, dtb_addr
kernel_entry:	.quad	KERNEL_ENTRY
dtb_addr:	.quad	DTB_ADDR

	/* At 0x0097F000 (monitor.ld), not part of the loaded image: QEMU's OCRAM
	 * reads 0 at power-on (M core held, as TF-A finds the M7), and a target
	 * may preload 1 with "-device loader,addr=0x0097f000,data=1,data-len=4"
	 * for an M core the bootloader started (imx_rproc then attaches).  It is
	 * not in the ELF because QEMU copies ELF contents after the loader's data
	 * writes at reset. */
	.section .rprockit_state, "aw", %nobits
	.balign	4
	.global	m_core_running, remote_stop, remote_on_result
m_core_running:	.skip	4
	/* 0x0097F004: 1 while STOP asks the stand-in image to power its core off
	 * (the image polls it); 0x0097F008: QEMU's CPU_ON result of the last START */
remote_stop:	.skip	4
remote_on_result: .skip	4

	.section .bss, "aw", %nobits
	.balign	16
	.skip	1024
stack_top:
