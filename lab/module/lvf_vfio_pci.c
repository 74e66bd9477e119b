// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvf_vfio_pci: a VFIO variant driver for the libvirt-vfio lab.
 *
 * Debian's kernels ship no VFIO variant driver, so the lab builds this one
 * to exercise variant detection and binding with the real kernel. It adds
 * nothing to vfio-pci-core: it only registers as a variant for the Intel
 * 82574L (e1000e, 8086:10d3). The ID is override-only (as for every VFIO
 * variant), so the driver never binds by itself and depmod writes a
 * "vfio_pci:" alias for it into modules.alias.
 */

#include <linux/module.h>
#include <linux/pci.h>
#include <linux/vfio_pci_core.h>

static int lvf_vfio_pci_open_device(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev =
		container_of(core_vdev, struct vfio_pci_core_device, vdev);
	int ret;

	ret = vfio_pci_core_enable(vdev);
	if (ret)
		return ret;

	vfio_pci_core_finish_enable(vdev);
	return 0;
}

static const struct vfio_device_ops lvf_vfio_pci_ops = {
	.name		= "lvf-vfio-pci",
	.init		= vfio_pci_core_init_dev,
	.release	= vfio_pci_core_release_dev,
	.open_device	= lvf_vfio_pci_open_device,
	.close_device	= vfio_pci_core_close_device,
	.ioctl		= vfio_pci_core_ioctl,
	.device_feature	= vfio_pci_core_ioctl_feature,
	.read		= vfio_pci_core_read,
	.write		= vfio_pci_core_write,
	.mmap		= vfio_pci_core_mmap,
	.request	= vfio_pci_core_request,
	.match		= vfio_pci_core_match,
};

static int lvf_vfio_pci_probe(struct pci_dev *pdev,
			      const struct pci_device_id *id)
{
	struct vfio_pci_core_device *vdev;
	int ret;

	vdev = vfio_alloc_device(vfio_pci_core_device, vdev, &pdev->dev,
				 &lvf_vfio_pci_ops);
	if (IS_ERR(vdev))
		return PTR_ERR(vdev);

	dev_set_drvdata(&pdev->dev, vdev);
	ret = vfio_pci_core_register_device(vdev);
	if (ret) {
		vfio_put_device(&vdev->vdev);
		return ret;
	}
	return 0;
}

static void lvf_vfio_pci_remove(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *vdev = dev_get_drvdata(&pdev->dev);

	vfio_pci_core_unregister_device(vdev);
	vfio_put_device(&vdev->vdev);
}

static const struct pci_device_id lvf_vfio_pci_table[] = {
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_VENDOR_ID_INTEL, 0x10d3) },
	{}
};
MODULE_DEVICE_TABLE(pci, lvf_vfio_pci_table);

static struct pci_driver lvf_vfio_pci_driver = {
	.name			= KBUILD_MODNAME,
	.id_table		= lvf_vfio_pci_table,
	.probe			= lvf_vfio_pci_probe,
	.remove			= lvf_vfio_pci_remove,
	.err_handler		= &vfio_pci_core_err_handlers,
	.driver_managed_dma	= true,
};
module_pci_driver(lvf_vfio_pci_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VFIO variant driver for the libvirt-vfio lab (82574L)");
