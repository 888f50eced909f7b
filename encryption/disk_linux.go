package encryption

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DiskEncryption tells whether dir is on a dm-crypt device, from
// /proc/self/mountinfo and /sys: the mount holding dir, its block device,
// and that device's device-mapper UUID and those of the devices below it
// (dm-crypt's start with "CRYPT-").
func DiskEncryption(dir string) (DiskReport, error) {
	return diskEncryption(dir, "/proc/self/mountinfo", "/sys")
}

// maxDeviceDepth bounds the walk down stacked devices.
const maxDeviceDepth = 16

func diskEncryption(dir, mountinfo, sysRoot string) (DiskReport, error) {
	abs, err := existingAncestor(dir)
	if err != nil {
		return DiskReport{Dir: dir}, fmt.Errorf("resolve %s: %w", dir, err)
	}
	rep, err := findMount(abs, mountinfo)
	if err != nil {
		return rep, err
	}
	if strings.HasPrefix(rep.Device, "0:") { // no block device of its own
		rep.Device = ""
		if strings.HasPrefix(rep.Source, "/dev/") { // btrfs reports an anonymous device
			rep.Device = blockDeviceOf(rep.Source)
		}
	}
	if rep.Device != "" {
		rep.Encrypted = isCrypt(filepath.Join(sysRoot, "dev", "block", rep.Device), sysRoot, 0)
	}
	return rep, nil
}

// existingAncestor resolves dir, or its nearest parent that exists (a data
// directory is created after the check on a first start).
func existingAncestor(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		real, err := filepath.EvalSymlinks(abs)
		if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(abs) == abs {
			return real, err
		}
		abs = filepath.Dir(abs)
	}
}

// findMount returns the mount of /proc/<pid>/mountinfo that holds path: the
// one with the longest mount point containing it, the last of equals.
func findMount(path, mountinfo string) (DiskReport, error) {
	rep := DiskReport{Dir: path}
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return rep, fmt.Errorf("read mounts: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// ID parent major:minor root mountpoint options [optional…] - fstype source superoptions
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if !within(path, mp) || len(mp) < len(rep.MountPoint) {
			continue
		}
		rep.MountPoint, rep.Device, rep.FSType, rep.Source = mp, f[2], f[sep+1], unescapeMountinfo(f[sep+2])
	}
	if rep.MountPoint == "" {
		return rep, fmt.Errorf("no mount in %s holds %s", mountinfo, path)
	}
	return rep, nil
}

// within reports whether path is mp or below it.
func within(path, mp string) bool {
	return mp == "/" || path == mp || strings.HasPrefix(path, mp+"/")
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// blockDeviceOf returns the major:minor of a block device node, or "".
func blockDeviceOf(node string) string {
	fi, err := os.Stat(node)
	if err != nil || fi.Mode()&os.ModeDevice == 0 {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	dev := uint64(st.Rdev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	return fmt.Sprintf("%d:%d", major, minor)
}

// isCrypt reports whether the block device whose sysfs directory is dir is
// a dm-crypt device or stands on one: its dm/uuid starts with "CRYPT-", or
// one of the devices in its slaves/ directory is such a device.
func isCrypt(dir, sysRoot string, depth int) bool {
	if depth > maxDeviceDepth {
		return false
	}
	if uuid, err := os.ReadFile(filepath.Join(dir, "dm", "uuid")); err == nil && bytes.HasPrefix(uuid, []byte("CRYPT-")) {
		return true
	}
	slaves, err := os.ReadDir(filepath.Join(dir, "slaves"))
	if err != nil {
		return false
	}
	for _, s := range slaves {
		if isCrypt(filepath.Join(sysRoot, "class", "block", s.Name()), sysRoot, depth+1) {
			return true
		}
	}
	return false
}
