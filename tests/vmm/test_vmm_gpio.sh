#!/usr/bin/env bash
# vmm scenario gpio: Linux's pci-idio-16 driver binds to vfu-rt's GPIO card; inputs toggle, outputs read back.
# Usage: test_vmm_gpio.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init gpio "$1" "$2"

# A conventional PCI card (no Express capability): QEMU's error-recovery warning is expected.
VMM_CONVENTIONAL_PCI="$T/gpio0.sock"
daemon_start d --cores=0 --device gpio,socket="$T/gpio0.sock",toggle_period=3 || vmm_finish
guest_boot g gpio "" "$T/gpio0.sock"
require g-gpio-bind g-gpio-chip g-gpio-input-16 g-gpio-input-24 g-gpio-output g-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
