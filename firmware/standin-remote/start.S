/* SPDX-License-Identifier: MIT */
/*
 * Entry of the stand-in remote core (MPIDR 3 of QEMU's imx8mp-evk), powered
 * on by the EL3 monitor through QEMU's PSCI CPU_ON and entered at EL1 by the
 * monitor's EL2 hold code (firmware/el3-monitor remote_hold): MMU and caches
 * off, SP and x0 = the initial SP of the vector table.  Interrupts stay
 * masked here: the image polls, and its WFI ends when its timer interrupt
 * is taken at EL2 (HCR_EL2.IMO), where the hold code also takes the stop.
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
