/* SPDX-License-Identifier: MIT */
/*
 * rproc-test: minimal Cortex-M4 firmware for the i.MX7D imx_rproc driver.
 *
 * It carries what the remoteproc ELF loader and resource-table code need
 * to exercise (drivers/remoteproc/remoteproc_elf_loader.c,
 * rproc_elf_load_segments / rproc_elf_load_rsc_table): a vector table at
 * M4 address 0 (OCRAM_S, see rproc-test.ld), a resource table with one RPMsg vdev, initialised data
 * whose size is not a multiple of 4, and zero-filled .bss.
 */
#include <stdint.h>

#include "rsc_table.h"

#define STACK_BYTES 1024u

/* Vring layout: 6.1 rproc_parse_vring() rejects num == 0 or align == 0;
 * virtio_ring.c vring_create_virtqueue() wants num a power of 2. */
#define VRING_ALIGN 4096u
#define VRING_NUM 16u

__attribute__((section(".resource_table"), used))
const struct rsc_table_one_vdev resource_table = RSC_TABLE_RPMSG_VDEV(VRING_ALIGN, VRING_NUM);

/* 13 bytes of initialised data: .data size is not a multiple of 4. */
__attribute__((used))
volatile char banner[13] = "rproc-test-1";

__attribute__((used))
volatile uint32_t heartbeat;

__attribute__((section(".stack"), used))
static uint32_t stack[STACK_BYTES / 4];

void reset_handler(void);

__attribute__((noreturn)) void reset_handler(void)
{
	for (;;) {
		heartbeat = heartbeat + (uint32_t)banner[0];
	}
}

/* Initial SP, then the reset handler (Thumb bit set by the linker). */
__attribute__((section(".vectors"), used))
const uintptr_t vector_table[2] = {
	(uintptr_t)&stack[STACK_BYTES / 4],
	(uintptr_t)&reset_handler,
};
