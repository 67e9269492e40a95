/* SPDX-License-Identifier: MIT */
/*
 * Entry of the stand-in remote core (MPIDR 3 of QEMU's imx8mp-evk), powered
 * on by the EL3 monitor through QEMU's PSCI CPU_ON: EL2, MMU and caches off,
 * x0 = the initial SP of the vector table (firmware/el3-monitor
 * remote_release).  Interrupts stay masked: the image polls, and WFI wakes on
 * its timer's pending interrupt without taking it (standin.c).
 */
	.section .vectors, "a"
	.word	stack_top			/* word 0: initial SP */
	.word	_start				/* word 1: reset PC */

	.section .text.entry, "ax"
	.global	_start
_start:
	msr	daifset, #0xf
	cbnz	x0, 1f
	ldr	x0, =stack_top
1:	mov	sp, x0
	bl	standin_main
2:	wfi
	b	2b

/* void psci_cpu_off(void): QEMU's PSCI on the HVC conduit powers this core off */
	.global	psci_cpu_off
psci_cpu_off:
	ldr	w0, =0x84000002			/* PSCI CPU_OFF (Arm DEN0022) */
	hvc	#0
	ret

/* void standin_restart(void): start over as after reset (new SP, same image) */
	.global	standin_restart
standin_restart:
	ldr	x0, =stack_top
	b	_start
