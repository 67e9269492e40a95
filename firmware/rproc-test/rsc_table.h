/* SPDX-License-Identifier: MIT */
/*
 * Resource table layout understood by the Linux remoteproc core.
 *
 * Source: include/linux/remoteproc.h (Linux 6.1): struct resource_table,
 * struct fw_rsc_hdr, struct fw_rsc_vdev, struct fw_rsc_vdev_vring,
 * enum fw_resource_type; include/uapi/linux/virtio_ids.h (VIRTIO_ID_RPMSG);
 * drivers/rpmsg/virtio_rpmsg_bus.c (VIRTIO_RPMSG_F_NS).
 */
#ifndef RPROCKIT_RSC_TABLE_H
#define RPROCKIT_RSC_TABLE_H

#include <stdint.h>

#define RSC_CARVEOUT 0u
#define RSC_DEVMEM 1u
#define RSC_TRACE 2u
#define RSC_VDEV 3u

#define FW_RSC_ADDR_ANY 0xffffffffu
#define VIRTIO_ID_RPMSG 7u
#define VIRTIO_RPMSG_F_NS 0u

struct fw_rsc_vdev_vring {
	uint32_t da;
	uint32_t align;
	uint32_t num;
	uint32_t notifyid;
	uint32_t pa;
} __attribute__((packed));

struct fw_rsc_vdev {
	uint32_t id;
	uint32_t notifyid;
	uint32_t dfeatures;
	uint32_t gfeatures;
	uint32_t config_len;
	uint8_t status;
	uint8_t num_of_vrings;
	uint8_t reserved[2];
	struct fw_rsc_vdev_vring vring[2];
} __attribute__((packed));

/* One RSC_VDEV entry (type word + struct fw_rsc_vdev) after the header. */
struct rsc_table_one_vdev {
	uint32_t ver;
	uint32_t num;
	uint32_t reserved[2];
	uint32_t offset[1];
	uint32_t vdev_type;
	struct fw_rsc_vdev vdev;
} __attribute__((packed));

/* An RPMsg vdev with two kernel-allocated vrings (da = FW_RSC_ADDR_ANY). */
#define RSC_TABLE_RPMSG_VDEV(VRING_ALIGN, VRING_NUM) {                         \
	.ver = 1,                                                              \
	.num = 1,                                                              \
	.reserved = {0, 0},                                                    \
	.offset = {__builtin_offsetof(struct rsc_table_one_vdev, vdev_type)},  \
	.vdev_type = RSC_VDEV,                                                 \
	.vdev = {                                                              \
		.id = VIRTIO_ID_RPMSG,                                         \
		.notifyid = 0,                                                 \
		.dfeatures = 1u << VIRTIO_RPMSG_F_NS,                          \
		.gfeatures = 0,                                                \
		.config_len = 0,                                               \
		.status = 0,                                                   \
		.num_of_vrings = 2,                                            \
		.reserved = {0, 0},                                            \
		.vring = {                                                     \
			{FW_RSC_ADDR_ANY, (VRING_ALIGN), (VRING_NUM), 0, 0},   \
			{FW_RSC_ADDR_ANY, (VRING_ALIGN), (VRING_NUM), 1, 0},   \
		},                                                             \
	},                                                                     \
}

#endif
