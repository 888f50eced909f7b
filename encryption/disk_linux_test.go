package encryption

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskEncryption tells encrypted from plain devices in a fake sysfs
// (#12): dm-crypt directly under the filesystem, under LVM, not at all, and
// a filesystem without a block device.
func TestDiskEncryption(t *testing.T) {
	sys := t.TempDir()
	dev := func(path, uuid string, slaves ...string) {
		t.Helper()
		dir := filepath.Join(sys, path)
		if err := os.MkdirAll(filepath.Join(dir, "slaves"), 0o755); err != nil {
			t.Fatal(err)
		}
		if uuid != "" {
			if err := os.MkdirAll(filepath.Join(dir, "dm"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "dm", "uuid"), []byte(uuid+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range slaves {
			if err := os.WriteFile(filepath.Join(dir, "slaves", s), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	dev("dev/block/8:1", "")                                            // a plain partition
	dev("dev/block/253:0", "CRYPT-LUKS2-0123456789abcdef-data", "sda2") // LUKS on a partition
	dev("dev/block/253:2", "LVM-abcdef", "dm-1")                        // an LVM volume…
	dev("class/block/dm-1", "CRYPT-LUKS2-fedcba-pv", "sda3")            // …on LUKS
	dev("class/block/sda3", "")
	dev("dev/block/253:3", "LVM-plain", "sda4") // LVM without encryption
	dev("class/block/sda4", "")

	data := t.TempDir()
	for _, tc := range []struct {
		name, device, fstype string
		encrypted            bool
		wantDevice           string
	}{
		{"plain disk", "8:1", "ext4", false, "8:1"},
		{"LUKS", "253:0", "ext4", true, "253:0"},
		{"LVM on LUKS", "253:2", "xfs", true, "253:2"},
		{"LVM alone", "253:3", "xfs", false, "253:3"},
		{"no block device", "0:55", "overlay", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mountinfo := filepath.Join(t.TempDir(), "mountinfo")
			lines := "22 27 0:21 / /proc rw,relatime - proc proc rw\n" +
				"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
				"30 27 " + tc.device + " / " + strings.ReplaceAll(data, " ", `\040`) + " rw,relatime shared:5 - " + tc.fstype + " /dev/mapper/x rw\n" +
				"31 30 0:30 / " + data + "/other rw - tmpfs tmpfs rw\n"
			if err := os.WriteFile(mountinfo, []byte(lines), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := diskEncryption(filepath.Join(data, "."), mountinfo, sys)
			if err != nil {
				t.Fatal(err)
			}
			if rep.MountPoint != data || rep.FSType != tc.fstype || rep.Device != tc.wantDevice || rep.Encrypted != tc.encrypted {
				t.Fatalf("report %+v; want mount %s, %s, device %q, encrypted %v", rep, data, tc.fstype, tc.wantDevice, tc.encrypted)
			}
		})
	}
}

// TestDiskEncryptionHere runs the real detection on this machine: it must
// find the mount of a temporary directory; whether that is encrypted
// depends on the machine.
func TestDiskEncryptionHere(t *testing.T) {
	rep, err := DiskEncryption(filepath.Join(t.TempDir(), "not", "created", "yet"))
	if err != nil || rep.MountPoint == "" || rep.FSType == "" {
		t.Fatalf("report %+v, %v", rep, err)
	}
	t.Logf("%+v", rep)
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/a\011`: "/a\t", `/plain`: "/plain", `/bad\04`: `/bad\04`, `\134`: `\`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzFindMount checks that any mountinfo content gives a mount holding the
// path or an error, never a panic.
func FuzzFindMount(f *testing.F) {
	f.Add("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n")
	f.Add("30 27 253:2 / /var/lib/fp rw shared:5 master:1 - xfs /dev/mapper/vg-fp rw\n36 35 98:0 /mnt1 /var/lib rw - ext3 /dev/root rw\n")
	f.Add("1 2 3 4 5 6 -\n1 2 3:4 / /a\\040b rw - x y z\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(dir, "mountinfo")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := findMount("/var/lib/fp/data", path)
		if err == nil && !within("/var/lib/fp/data", rep.MountPoint) {
			t.Fatalf("mount %q does not hold the path", rep.MountPoint)
		}
	})
}
