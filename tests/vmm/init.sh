#!/bin/busybox sh
# Guest /init of the vmm suite: loads the drivers, runs the checks of vfurt.scenario=, powers off.
#
# Kernel command line:
#   vfurt.scenario=NAME   gpio | nvme | nvme-intx | nvme-two | persist-write | persist-check |
#                         write-forever | reset | live | upgrade
#   vfurt.sum=MD5         persist-check: the checksum persist-write printed
#   vfurt.run=S           upgrade: seconds of the I/O loop (default 40)
#   vfurt.wait=S          seconds to wait for the devices to appear (default 40)
#   MOD.PARAM=VALUE       passed to insmod of module MOD (insmod, unlike modprobe, ignores them)
# Output on the serial console, one line each:
#   VFURT-CHECK <name> PASS|FAIL <detail>    VFURT-INFO <key>=<value>    VFURT-DONE <failures>

/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /tmp /mnt
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1

FAILED=0
SCENARIO=
SUM=
WAIT=40
RUN=40
MODPARAMS=
for tok in $(cat /proc/cmdline); do
	case "$tok" in
	vfurt.scenario=*) SCENARIO=${tok#*=} ;;
	vfurt.sum=*) SUM=${tok#*=} ;;
	vfurt.wait=*) WAIT=${tok#*=} ;;
	vfurt.run=*) RUN=${tok#*=} ;;
	*.*=*) MODPARAMS="$MODPARAMS $tok" ;;
	esac
done

check() { # NAME PASS|FAIL DETAIL...
	n=$1
	r=$2
	shift 2
	[ "$r" = PASS ] || FAILED=$((FAILED + 1))
	echo "VFURT-CHECK $n $r $*"
}
info() { echo "VFURT-INFO $*"; }
finish() {
	if [ "$FAILED" -gt 0 ]; then
		echo "VFURT-DMESG-BEGIN"
		dmesg | tail -n 50
		echo "VFURT-DMESG-END"
	fi
	echo "VFURT-DONE $FAILED"
	sync
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

load_modules() {
	for ko in $(cat /etc/modules); do
		m=$(basename "$ko" .ko | tr - _)
		params=
		for p in $MODPARAMS; do
			pm=$(echo "${p%%.*}" | tr - _)
			[ "$pm" = "$m" ] && params="$params ${p#*.}"
		done
		# shellcheck disable=SC2086
		out=$(insmod "$ko" $params 2>&1) || check "insmod-$m" FAIL "$out"
	done
}

# --- devices -----------------------------------------------------------------------------

# Wait until COUNT PCI functions are bound to DRIVER; print their BDFs.
wait_bound() { # DRIVER COUNT
	i=0
	while [ "$i" -lt $((WAIT * 5)) ]; do
		n=$(ls /sys/bus/pci/drivers/"$1" 2>/dev/null | grep -c '^0000:')
		[ "$n" -ge "$2" ] && break
		# a driver that gave up on a device will not bind it later
		dmesg | grep -q 'probe failure' && break
		usleep 200000
		i=$((i + 1))
	done
	ls /sys/bus/pci/drivers/"$1" 2>/dev/null | grep '^0000:'
}

# Wait for a block device node; 0 when it appeared.
wait_block() { # DEV
	i=0
	while [ "$i" -lt $((WAIT * 5)) ]; do
		[ -b "$1" ] && return 0
		usleep 200000
		i=$((i + 1))
	done
	return 1
}

# Sum over CPUs of the /proc/interrupts lines matching a pattern.
irq_sum() { # PATTERN
	awk -v pat="$1" 'NR == 1 { n = NF; next }
		$0 ~ pat { for (i = 2; i <= n + 1; i++) s += $i } END { print s + 0 }' /proc/interrupts
}

# Interrupt types of a PCI function from sysfs: "msix", "msi" or "intx".
irq_kind() { # BDF
	d=/sys/bus/pci/devices/$1/msi_irqs
	if [ -d "$d" ] && [ -n "$(ls "$d")" ]; then cat "$d"/* | sort -u | tr '\n' ' '; else echo intx; fi
}

# Requests completed by a block device (reads + writes).
blk_ios() { # NAME (nvme0n1)
	awk '{ print $1 + $5 }' /sys/block/"$1"/stat
}

# --- GPIO ----------------------------------------------------------------------------------

# Export global GPIO N and print its sysfs directory: gpioN, or the line's name when the driver
# names its lines (pci-idio-16: OUT0..OUT15, IIN0..IIN15).
gpio_export() { # N
	before=$(ls /sys/class/gpio)
	echo "$1" >/sys/class/gpio/export
	for e in /sys/class/gpio/*; do
		echo "$before" | grep -qx "${e##*/}" || { echo "$e"; return; }
	done
	echo "/sys/class/gpio/gpio$1"
}

scenario_gpio() {
	bdf=$(wait_bound pci-idio-16 1 | head -1)
	if [ -z "$bdf" ]; then
		check gpio-bind FAIL "no device bound to pci-idio-16 after ${WAIT}s; lspci-ish: $(cat /sys/bus/pci/devices/*/vendor | tr '\n' ' ')"
		return
	fi
	check gpio-bind PASS "$bdf bound to pci-idio-16"
	chip=$(ls -d /sys/bus/pci/devices/"$bdf"/gpio/gpiochip* 2>/dev/null | head -1)
	if [ -z "$chip" ]; then
		check gpio-chip FAIL "no gpiochip under /sys/bus/pci/devices/$bdf/gpio (CONFIG_GPIO_SYSFS?)"
		return
	fi
	base=$(cat "$chip"/base)
	ngpio=$(cat "$chip"/ngpio)
	if [ "$ngpio" = 32 ]; then
		check gpio-chip PASS "$(basename "$chip") base=$base ngpio=32 label=$(cat "$chip"/label)"
	else
		check gpio-chip FAIL "$(basename "$chip") has $ngpio lines, want 32"
	fi
	gpio_lines "$base"
}

# The card's lines from global GPIO BASE: inputs toggle every 3 reads, outputs read back.
gpio_lines() { # BASE
	base=$1
	# Inputs (lines 16-31) change every 3 reads of their register: read one line of each bank
	# 12 times; after the first change the values must come in runs of exactly 3. "value" is a
	# preallocated sysfs attribute: every read() calls the driver, so cat's read-until-EOF costs
	# two register reads; one dd read() of 2 bytes costs one.
	for line in 16 24; do
		gd=$(gpio_export $((base + line)))
		seq=
		for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do seq="$seq$(dd if="$gd"/value bs=2 count=1 2>/dev/null)"; done
		body=$(echo "$seq" | sed 's/^\(0*\|1*\)//')   # drop the leading partial run
		body=$(echo "$body" | sed 's/\(1*\)$//; s/\(0*\)$//') # and a trailing one
		if echo "$body" | grep -qE '^((000)|(111))+$' && echo "$seq" | grep -q 0 && echo "$seq" | grep -q 1; then
			check gpio-input-$line PASS "$(basename "$gd"): 12 reads $seq"
		else
			check gpio-input-$line FAIL "$(basename "$gd"): 12 reads '$seq' (want runs of 3 alternating 0/1)"
		fi
	done

	# Outputs (lines 0-15) read back what was written, without touching their neighbours.
	bad=
	for line in 0 3 7 8 12 15; do
		gd=$(gpio_export $((base + line)))
		eval "out_$line=$gd"
		echo out >"$gd"/direction
	done
	for line in 0 3 7 8 12 15; do
		eval "gd=\$out_$line"
		echo 1 >"$gd"/value
		v=$(cat "$gd"/value)
		[ "$v" = 1 ] || bad="$bad line$line:set1->$v"
	done
	for line in 3 12; do
		eval "gd=\$out_$line"
		echo 0 >"$gd"/value
	done
	for line in 0 3 7 8 12 15; do
		want=1
		[ "$line" = 3 ] || [ "$line" = 12 ] && want=0
		eval "gd=\$out_$line"
		v=$(cat "$gd"/value)
		[ "$v" = "$want" ] || bad="$bad line$line:want$want->$v"
	done
	if [ -z "$bad" ]; then
		check gpio-output PASS "lines 0 3 7 8 12 15 read back 1, then 3 and 12 cleared alone"
	else
		check gpio-output FAIL "$bad"
	fi
}

# --- NVMe ----------------------------------------------------------------------------------

# Find the controllers and namespaces: sets BDFS and prints checks; 0 when COUNT are usable.
nvme_wait() { # COUNT
	BDFS=$(wait_bound nvme "$1" | tr '\n' ' ')
	nb=$(echo $BDFS | wc -w)
	if [ "$nb" -lt "$1" ]; then
		check nvme-bind FAIL "$nb of $1 controllers bound to nvme (waited up to ${WAIT}s, stopped at a probe failure); dmesg: $(dmesg | grep -i nvme | tail -3 | tr '\n' ' ')"
		return 1
	fi
	check nvme-bind PASS "bound: $BDFS"
	k=0
	while [ "$k" -lt "$1" ]; do
		if ! wait_block /dev/nvme${k}n1; then
			check nvme-ns FAIL "/dev/nvme${k}n1 did not appear after ${WAIT}s; controller state: $(cat /sys/class/nvme/nvme$k/state 2>/dev/null)"
			return 1
		fi
		k=$((k + 1))
	done
	check nvme-ns PASS "$(for b in /sys/block/nvme*n*; do echo "$(basename "$b"):$(($(cat "$b"/size) / 2048))MiB"; done | tr '\n' ' ')"
	return 0
}

# O_DIRECT write of 1 MiB at TAG's offset, read back with O_DIRECT, compare.
raw_io() { # DEV TAG [OFFSET_MiB]
	off=${3:-64}
	dd if=/dev/urandom of=/tmp/pat.$2 bs=64k count=16 2>/dev/null
	if ! out=$(dd if=/tmp/pat.$2 of="$1" bs=64k seek=$((off * 16)) oflag=direct conv=fsync 2>&1); then
		check raw-io-$2 FAIL "O_DIRECT write to $1 failed: $(echo "$out" | head -2 | tr '\n' ' ')"
		return 1
	fi
	if ! out=$(dd if="$1" of=/tmp/rd.$2 bs=64k skip=$((off * 16)) count=16 iflag=direct 2>&1); then
		check raw-io-$2 FAIL "O_DIRECT read of $1 failed: $(echo "$out" | head -2 | tr '\n' ' ')"
		return 1
	fi
	if cmp -s /tmp/pat.$2 /tmp/rd.$2; then
		check raw-io-$2 PASS "1 MiB O_DIRECT write/read-back at ${off} MiB of $1 matches"
	else
		check raw-io-$2 FAIL "read-back of $1 differs: $(cmp /tmp/pat.$2 /tmp/rd.$2 2>&1 | head -1)"
		return 1
	fi
	rm -f /tmp/pat.$2 /tmp/rd.$2
}

# mkfs.ext4 DEV and mount it on /mnt.
make_fs() { # DEV TAG
	if out=$(mkfs.ext4 -F -q "$1" 2>&1); then
		check mkfs-$2 PASS "mkfs.ext4 $1"
	else
		check mkfs-$2 FAIL "mkfs.ext4 $1: $(echo "$out" | tail -3 | tr '\n' ' ')"
		return 1
	fi
	if out=$(mount -t ext4 "$1" /mnt 2>&1); then
		check mount-$2 PASS "mounted $1"
	else
		check mount-$2 FAIL "mount $1: $out; $(dmesg | grep -i ext4 | tail -2 | tr '\n' ' ')"
		return 1
	fi
}

# Filesystem round trip: write, sync, drop caches, remount, compare, e2fsck -fn.
fs_io() { # DEV TAG
	make_fs "$1" "$2" || return 1
	dd if=/dev/urandom of=/mnt/data bs=64k count=64 2>/dev/null
	mkdir -p /mnt/dir && echo "vfu-rt $2" >/mnt/dir/hello
	sum1=$(md5sum </mnt/data | cut -d' ' -f1)
	sync
	umount /mnt
	echo 3 >/proc/sys/vm/drop_caches
	if ! mount -t ext4 "$1" /mnt 2>/dev/null; then
		check fs-remount-$2 FAIL "second mount of $1 failed"
		return 1
	fi
	sum2=$(md5sum </mnt/data | cut -d' ' -f1)
	hello=$(cat /mnt/dir/hello 2>&1)
	umount /mnt
	if [ "$sum1" = "$sum2" ] && [ "$hello" = "vfu-rt $2" ]; then
		check fs-data-$2 PASS "4 MiB file md5 $sum1 after sync, drop_caches, remount"
	else
		check fs-data-$2 FAIL "md5 written $sum1, read after remount $sum2; hello='$hello'"
	fi
	fsck_clean "$1" "$2"
}

fsck_clean() { # DEV TAG
	if out=$(e2fsck -fn "$1" 2>&1); then
		check fsck-$2 PASS "e2fsck -fn $1 clean"
	else
		check fsck-$2 FAIL "e2fsck -fn $1: $(echo "$out" | tail -4 | tr '\n' ' ')"
	fi
}

# Interrupts: the controller's vectors must be of KIND and their counts must have grown.
check_irqs() { # BDF KIND BEFORE AFTER
	kind=$(irq_kind "$1")
	case "$kind" in
	*"$2"*) check irq-kind PASS "$1 uses $kind" ;;
	*) check irq-kind FAIL "$1 uses '$kind', want $2" ;;
	esac
	if [ "$4" -gt "$3" ]; then
		check irq-count PASS "nvme interrupts $3 -> $4 during I/O"
	else
		check irq-count FAIL "nvme interrupts did not increase during I/O ($3 -> $4): $(grep nvme /proc/interrupts | tr -s ' ' | tr '\n' ';')"
	fi
}

scenario_nvme() { # [KIND]
	nvme_wait 1 || return
	bdf=${BDFS%% *}
	before=$(irq_sum nvme)
	raw_io /dev/nvme0n1 a
	fs_io /dev/nvme0n1 a
	after=$(irq_sum nvme)
	check_irqs "$bdf" "${1:-msix}" "$before" "$after"
	info "irqs=$after ios=$(blk_ios nvme0n1)"
}

scenario_nvme_intx() {
	scenario_nvme intx
	[ -b /dev/nvme0n1 ] || return
	irqs=$(irq_sum nvme)
	ios=$(blk_ios nvme0n1)
	# A level interrupt that is not deasserted storms: thousands per request. Allow 10 per
	# request plus the admin commands of the probe.
	if [ "$irqs" -lt $((ios * 10 + 200)) ]; then
		check intx-rate PASS "$irqs interrupts for $ios block requests"
	else
		check intx-rate FAIL "$irqs interrupts for $ios block requests (storm?)"
	fi
}

scenario_nvme_two() {
	nvme_wait 2 || return
	# Both at once, each with its own data, then a filesystem on each in turn.
	raw_io /dev/nvme0n1 c0 &
	p0=$!
	raw_io /dev/nvme1n1 c1 &
	p1=$!
	wait $p0 $p1
	fs_io /dev/nvme0n1 c0
	fs_io /dev/nvme1n1 c1
	dup=$(dmesg | grep -i 'duplicate IDs' | head -2 | tr '\n' ' ')
	if [ -z "$dup" ]; then
		check unique-ids PASS "no duplicate namespace IDs reported"
	else
		check unique-ids FAIL "$dup"
	fi
	for s in /sys/class/nvme/nvme0 /sys/class/nvme/nvme1; do
		info "$(basename $s) serial=$(cat $s/serial | tr -d ' ') subsysnqn=$(cat $s/subsysnqn)"
	done
}

# persist-write: a filesystem with a file; its checksum goes to the host for persist-check.
scenario_persist_write() {
	nvme_wait 1 || return
	make_fs /dev/nvme0n1 p || return
	dd if=/dev/urandom of=/mnt/data bs=64k count=64 2>/dev/null
	sum=$(md5sum </mnt/data | cut -d' ' -f1)
	sync
	umount /mnt
	info "sum=$sum"
	check persist-write PASS "wrote /data md5 $sum and unmounted"
	# A raw marker in the last MiB, which the host finds in the backing file.
	printf 'VFURT-PERSIST-MARK' | dd of=/dev/nvme0n1 bs=512 seek=$(($(cat /sys/block/nvme0n1/size) - 2048)) conv=sync,fsync 2>/dev/null
}

scenario_persist_check() {
	nvme_wait 1 || return
	fsck_clean /dev/nvme0n1 p
	if ! mount -t ext4 /dev/nvme0n1 /mnt 2>/dev/null; then
		check persist-data FAIL "no ext4 filesystem on /dev/nvme0n1 after the restart"
		return
	fi
	sum=$(md5sum </mnt/data 2>/dev/null | cut -d' ' -f1)
	umount /mnt
	if [ -n "$SUM" ] && [ "$sum" = "$SUM" ]; then
		check persist-data PASS "/data md5 $sum survived the daemon restart"
	else
		check persist-data FAIL "/data md5 '$sum', want '$SUM'"
	fi
	raw_io /dev/nvme0n1 p2 128
}

# write-forever: O_DIRECT writes until the host kills the VMM.
scenario_write_forever() {
	nvme_wait 1 || return
	dd if=/dev/urandom of=/tmp/pat bs=64k count=16 2>/dev/null
	i=0
	while :; do
		dd if=/tmp/pat of=/dev/nvme0n1 bs=64k seek=$(((i % 256) * 16)) oflag=direct 2>/dev/null ||
			{ check write-loop FAIL "write $i failed"; return; }
		i=$((i + 1))
		[ "$i" = 4 ] && echo "VFURT-WRITING"
	done
}

scenario_reset() {
	nvme_wait 1 || return
	bdf=${BDFS%% *}
	raw_io /dev/nvme0n1 before
	d=/sys/bus/pci/devices/$bdf
	info "reset_method=$(cat "$d"/reset_method 2>/dev/null)"
	if out=$( (echo 1 >"$d"/reset) 2>&1); then
		check reset-write PASS "echo 1 > $d/reset: methods $(cat "$d"/reset_method 2>/dev/null)"
	else
		check reset-write FAIL "echo 1 > $d/reset: $out"
	fi
	# The driver resets the controller after the function reset; wait until it is live again.
	i=0
	while [ "$i" -lt $((WAIT * 5)) ] && [ "$(cat /sys/class/nvme/nvme0/state 2>/dev/null)" != live ]; do
		usleep 200000
		i=$((i + 1))
	done
	st=$(cat /sys/class/nvme/nvme0/state 2>/dev/null)
	if [ "$st" = live ]; then
		check reset-live PASS "controller live again after the reset"
	else
		check reset-live FAIL "controller state '$st' ${WAIT}s after the reset"
		return
	fi
	raw_io /dev/nvme0n1 after 96
	fs_io /dev/nvme0n1 after
}

# --- live control plane -------------------------------------------------------------------

# wait_for SECONDS COMMAND...: 0 as soon as COMMAND succeeds.
wait_for() {
	s=$1
	shift
	i=0
	while [ "$i" -lt $((s * 5)) ]; do
		"$@" && return 0
		usleep 200000
		i=$((i + 1))
	done
	return 1
}
size_is_not() { [ "$(cat /sys/block/nvme0n1/size 2>/dev/null)" != "$1" ]; }
no_gpio() { [ -z "$(ls /sys/bus/pci/drivers/pci-idio-16 2>/dev/null | grep '^0000:')" ]; }

# The host changes running devices through vfu-ctl: it grows the NVMe controller's namespace
# 1, adds a namespace 2, then unplugs the GPIO card (QMP device_del while `vfu-ctl remove`
# waits). The guest only watches, as a stock system would: the namespace changes must reach
# it through the controller's asynchronous event. VFURT-LIVE lines tell the host to take the
# next step. (The NVMe controller is not unplugged: QEMU 10.2 aborts after unplugging any
# vfio-user device with MSI-X, docs/testing-vmm.md.)
scenario_live() {
	nvme_wait 1 || return
	if [ -n "$(wait_bound pci-idio-16 1)" ]; then
		check gpio-bind PASS "the GPIO card is bound to pci-idio-16"
	else
		check gpio-bind FAIL "no device bound to pci-idio-16 after ${WAIT}s"
	fi
	s0=$(cat /sys/block/nvme0n1/size)
	info "size0=$s0"
	echo "VFURT-LIVE ready"
	if wait_for 120 size_is_not "$s0"; then
		check ns-resize PASS "nvme0n1 grew from $s0 to $(cat /sys/block/nvme0n1/size) sectors, no rescan asked"
		raw_io /dev/nvme0n1 grown 96
	else
		check ns-resize FAIL "nvme0n1 stayed at $s0 sectors for 120 s; dmesg: $(dmesg | grep -i nvme | tail -3 | tr '\n' ' ')"
	fi
	echo "VFURT-LIVE resized"
	if wait_for 120 test -b /dev/nvme0n2; then
		check ns-add PASS "/dev/nvme0n2 appeared: $(($(cat /sys/block/nvme0n2/size) / 2048)) MiB"
		raw_io /dev/nvme0n2 ns2 1
	else
		check ns-add FAIL "no /dev/nvme0n2 after 120 s; dmesg: $(dmesg | grep -i nvme | tail -3 | tr '\n' ' ')"
	fi
	echo "VFURT-LIVE added"
	if wait_for 120 no_gpio; then
		check unplug PASS "the GPIO card was hot-unplugged (pciehp)"
	else
		check unplug FAIL "the GPIO card is still bound after 120 s; dmesg: $(dmesg | grep -iE 'pciehp|idio' | tail -3 | tr '\n' ' ')"
	fi
	raw_io /dev/nvme0n1 after-unplug 32
}

# --- live upgrade ---------------------------------------------------------------------------

# The upgrade scenario's disk: ext4 on the first UP_FS_MIB MiB, raw 1 MiB blocks in UP_SLOTS
# slots 4 MiB apart after it (the namespace is 512 MiB).
UP_FS_MIB=256
UP_SLOTS=64

# Raw slot K's 1 MiB, read with O_DIRECT, against the md5 it was written with.
up_raw_check() { # SLOT
	off=$((UP_FS_MIB + $1 * 4))
	out=$(dd if=/dev/nvme0n1 of=/tmp/urd bs=64k skip=$((off * 16)) count=16 iflag=direct 2>&1) ||
		{ echo "O_DIRECT read at $off MiB failed: $(echo "$out" | head -1)"; return 1; }
	got=$(md5sum </tmp/urd | cut -d' ' -f1)
	[ "$got" = "$(cat /tmp/raw.$1)" ] ||
		{ echo "raw block at $off MiB: md5 $got, written $(cat /tmp/raw.$1)"; return 1; }
}

# One round I of the I/O loop: a fresh random 1 MiB O_DIRECT write in the raw area, read back
# and compared; the previous round's block read again; a fresh 2 MiB file on ext4 (fsync,
# page cache dropped, md5 of the read); the GPIO card's output line 5 written and read back,
# input line 20 read. Prints what failed; 0 when everything matched.
upgrade_round() { # I
	slot=$(($1 % UP_SLOTS))
	off=$((UP_FS_MIB + slot * 4))
	dd if=/dev/urandom of=/tmp/upat bs=64k count=16 2>/dev/null
	out=$(dd if=/tmp/upat of=/dev/nvme0n1 bs=64k seek=$((off * 16)) oflag=direct conv=fsync 2>&1) ||
		{ echo "O_DIRECT write at $off MiB failed: $(echo "$out" | head -1)"; return 1; }
	md5sum </tmp/upat | cut -d' ' -f1 >/tmp/raw.$slot
	up_raw_check "$slot" || return 1
	if [ "$1" -gt 0 ]; then
		up_raw_check $((($1 - 1) % UP_SLOTS)) || return 1
	fi
	dd if=/dev/urandom of=/tmp/fpat bs=64k count=32 2>/dev/null
	sum=$(md5sum </tmp/fpat | cut -d' ' -f1)
	out=$(dd if=/tmp/fpat of=/mnt/f$1 bs=64k conv=fsync 2>&1) ||
		{ echo "write of /mnt/f$1 failed: $(echo "$out" | head -1)"; return 1; }
	echo "$sum" >/tmp/fsum.$1
	echo 3 >/proc/sys/vm/drop_caches
	got=$(md5sum </mnt/f$1 | cut -d' ' -f1)
	[ "$got" = "$sum" ] || { echo "/mnt/f$1 reads md5 $got, written $sum"; return 1; }
	# keep the last 10 files (20 MiB)
	old=$(($1 - 10))
	[ "$old" -ge 0 ] && rm -f /mnt/f$old /tmp/fsum.$old
	v=$(($1 % 2))
	echo "$v" >"$UP_OUT"/value
	got=$(cat "$UP_OUT"/value)
	[ "$got" = "$v" ] || { echo "GPIO $(basename "$UP_OUT") set to $v reads '$got'"; return 1; }
	got=$(dd if="$UP_IN"/value bs=2 count=1 2>/dev/null)
	case "$got" in
	0 | 1) ;;
	*) echo "GPIO $(basename "$UP_IN") reads '$got'"; return 1 ;;
	esac
}

# The host upgrades the daemon (vfu-ctl upgrade) several times while this runs verified I/O
# on the NVMe namespace (raw and ext4) and the GPIO card for vfurt.run= seconds. The VMM's
# sockets never close: the guest must see nothing but a short pause. VFURT-UPGRADE lines tell
# the host when the loop runs and how far it got.
scenario_upgrade() {
	nvme_wait 1 || return
	gbdf=$(wait_bound pci-idio-16 1 | head -1)
	if [ -z "$gbdf" ]; then
		check gpio-bind FAIL "no device bound to pci-idio-16 after ${WAIT}s"
		return
	fi
	check gpio-bind PASS "$gbdf bound to pci-idio-16"
	chip=$(ls -d /sys/bus/pci/devices/"$gbdf"/gpio/gpiochip* 2>/dev/null | head -1)
	gbase=$(cat "$chip"/base)
	UP_OUT=$(gpio_export $((gbase + 5)))
	echo out >"$UP_OUT"/direction
	UP_IN=$(gpio_export $((gbase + 20)))
	if out=$(mkfs.ext4 -F -q /dev/nvme0n1 ${UP_FS_MIB}M 2>&1) && out=$(mount -t ext4 /dev/nvme0n1 /mnt 2>&1); then
		check mkfs-u PASS "ext4 of $UP_FS_MIB MiB on /dev/nvme0n1, mounted"
	else
		check mkfs-u FAIL "mkfs.ext4/mount /dev/nvme0n1: $(echo "$out" | tail -2 | tr '\n' ' ')"
		return
	fi
	echo "VFURT-UPGRADE ready"
	t0=$(date +%s)
	i=0
	err=
	while [ $(($(date +%s) - t0)) -lt "$RUN" ]; do
		if ! err=$(upgrade_round $i); then
			err="round $i: $err"
			break
		fi
		i=$((i + 1))
		echo "VFURT-UPGRADE round $i ok"
	done
	echo "VFURT-UPGRADE loop-end $i"
	if [ -z "$err" ] && [ "$i" -gt 0 ]; then
		check io-loop PASS "$i rounds in $(($(date +%s) - t0)) s, each 1 MiB raw + 2 MiB ext4 verified, GPIO answered"
	else
		check io-loop FAIL "${err:-no round finished}"
	fi
	# Everything written is still there: the raw blocks and the newest files, after a remount
	# and a clean e2fsck.
	bad=
	n=0
	for f in /tmp/raw.*; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		out=$(up_raw_check "${f#/tmp/raw.}") || bad="$bad $out;"
	done
	if [ -z "$bad" ] && [ "$n" -gt 0 ]; then
		check raw-verify PASS "the $n raw blocks written during the upgrades read back"
	else
		check raw-verify FAIL "${bad:-no raw block written}"
	fi
	sync
	umount /mnt
	echo 3 >/proc/sys/vm/drop_caches
	fsck_clean /dev/nvme0n1 u
	bad=
	n=0
	if mount -t ext4 /dev/nvme0n1 /mnt 2>/dev/null; then
		for f in /tmp/fsum.*; do
			[ -f "$f" ] || continue
			k=${f#/tmp/fsum.}
			n=$((n + 1))
			got=$(md5sum </mnt/f$k 2>&1 | cut -d' ' -f1)
			[ "$got" = "$(cat "$f")" ] || bad="$bad f$k:$got!=$(cat "$f")"
		done
		umount /mnt
	else
		bad="remount failed"
	fi
	if [ -z "$bad" ] && [ "$n" -gt 0 ]; then
		check fs-verify PASS "the newest $n files match their md5 after umount, drop_caches, remount"
	else
		check fs-verify FAIL "${bad:-no file written}"
	fi
	# the GPIO card after the upgrades: inputs still toggle every 3 reads, outputs read back
	gpio_lines "$gbase"
	bad=$(dmesg | grep -v 'ommand line:' | grep -E 'nvme.*timeout|reset|I/O error|Buffer I/O error' | head -3 | tr '\n' ' ')
	if [ -z "$bad" ]; then
		check dmesg-upgrade PASS "no nvme timeout, reset or I/O error in dmesg"
	else
		check dmesg-upgrade FAIL "$bad"
	fi
	info "rounds=$i ios=$(blk_ios nvme0n1) irqs=$(irq_sum nvme)"
}

# Kernel log lines no scenario may produce.
check_dmesg() {
	bad=$(dmesg | grep -E 'nobody cared|Call Trace|BUG:|I/O error|timeout, aborting|timeout, reset|controller is down|Disabling IRQ|duplicate IDs|Duplicate cntlid|probe failure' |
		head -3 | tr '\n' ' ')
	if [ -z "$bad" ]; then
		check dmesg-clean PASS "no IRQ, I/O, timeout or trace messages"
	else
		check dmesg-clean FAIL "$bad"
	fi
}

echo "VFURT-BOOTED scenario=$SCENARIO kernel=$(uname -r)"
load_modules
case "$SCENARIO" in
gpio) scenario_gpio ;;
nvme) scenario_nvme msix ;;
nvme-intx) scenario_nvme_intx ;;
nvme-two) scenario_nvme_two ;;
persist-write) scenario_persist_write ;;
persist-check) scenario_persist_check ;;
write-forever) scenario_write_forever ;;
reset) scenario_reset ;;
live) scenario_live ;;
upgrade) scenario_upgrade ;;
*) check scenario FAIL "unknown vfurt.scenario='$SCENARIO'" ;;
esac
check_dmesg
finish
