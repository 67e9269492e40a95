"""Pure parts of deploy: target loading, reload planning, built-in detection, df parsing."""

from __future__ import annotations

import logging

import pytest

from rprockit.deploy import (
    ModuleState,
    ReloadImpossibleError,
    ReloadStep,
    RprocInfo,
    SSHTransport,
    classify_modules,
    plan_reload,
)
from rprockit.deploy.remote import parse_df
from rprockit.errors import ProfileError
from rprockit.target import SSHParams, load_target

ORDER = ["rpmsg_core", "virtio_rpmsg_bus", "rpmsg_char", "imx_rpmsg", "imx_rproc"]
SHIPPED = {m: f"/lib/modules/r/updates/{m}.ko" for m in ("imx_rpmsg", "imx_rproc")}
L, B, A = ModuleState.LOADED, ModuleState.BUILTIN, ModuleState.ABSENT


# -- target loading -----------------------------------------------------------------------
def test_load_ssh_target_file(tmp_path):
    env = tmp_path / "board.yaml"
    env.write_text(
        "targets:\n"
        "  main:\n"
        "    resources:\n"
        "      NetworkService: {address: 192.0.2.10, username: root, port: 2222}\n"
        "    drivers:\n"
        "      SSHDriver: {keyfile: keys/id_board}\n"
        "    options:\n"
        "      rprockit:\n"
        "        modules_dir: /data/overlay/lib/modules/$(uname -r)/extra\n"
        "        sudo: true\n"
        "        known_hosts: kh\n")
    t = load_target(env)
    assert t.kind == "ssh"
    assert t.ssh == SSHParams("192.0.2.10", 2222, "root", str(tmp_path / "keys/id_board"))
    assert t.settings.sudo is True
    assert t.settings.known_hosts == str(tmp_path / "kh")
    assert t.modules_dir("6.1.22") == "/data/overlay/lib/modules/6.1.22/extra"
    assert t.firmware_dir("6.1.22") == "/lib/firmware"
    assert t.staging_dir == "/lib/.rprockit"


def test_load_qemu_target_with_unset_template_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LG_RPROCKIT_TEST_IMAGES", raising=False)
    env = tmp_path / "qemu.yaml"
    env.write_text(
        "targets:\n  main:\n    drivers:\n      QEMUDriver:\n"
        "        extra_args: !template \"-initrd $LG_RPROCKIT_TEST_IMAGES/i.cpio\"\n"
        "      ShellDriver: {prompt: '# ', login_prompt: 'login: ', username: root}\n"
        "    options:\n      rprockit: {root_prefix: /tmp/x}\n")
    t = load_target(env)
    assert t.kind == "qemu" and t.ssh is None
    assert t.path("/lib/firmware") == "/tmp/x/lib/firmware"
    assert t.sysfs == "/tmp/x/sys"


def test_serial_target(tmp_path):
    env = tmp_path / "serial.yaml"
    env.write_text("targets:\n  main:\n    resources:\n      RawSerialPort: {port: /dev/ttyUSB0}\n"
                   "    drivers:\n      SerialDriver: {}\n      ShellDriver: {prompt: '# '}\n")
    assert load_target(env).kind == "serial"


@pytest.mark.parametrize("spec,host,port,user", [
    ("root@192.0.2.7", "192.0.2.7", None, "root"),
    ("root@board.local:2222", "board.local", 2222, "root"),
    ("board", "board", None, None),
    ("me@[fd00::2]:22", "fd00::2", 22, "me"),
])
def test_user_at_host_strings(spec, host, port, user):
    t = load_target(spec)
    assert (t.kind, t.ssh.host, t.ssh.port, t.ssh.user) == ("ssh", host, port, user)


def test_missing_file_and_bad_port():
    with pytest.raises(ProfileError, match="no such file"):
        load_target("targets/none.yaml")
    with pytest.raises(ProfileError, match="out of range"):
        load_target("root@host:70000")


def test_all_bad_settings_reported_with_lines(tmp_path, caplog):
    env = tmp_path / "bad.yaml"
    env.write_text(
        "targets:\n"                                     # 1
        "  main:\n"                                      # 2
        "    resources:\n"                               # 3
        "      NetworkService: {address: h, username: u, port: 'x'}\n"  # 4
        "    drivers: {SSHDriver: {}}\n"                 # 5
        "    options:\n"                                 # 6
        "      rprockit:\n"                              # 7
        "        modules_dir: lib/modules\n"             # 8
        "        sudo: 'yes'\n"                          # 9
        "        colour: blue\n")                        # 10
    with caplog.at_level(logging.WARNING, "rprockit.target"), \
            pytest.raises(ProfileError) as err:
        load_target(env)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert f"{env}:4: targets.main.resources.NetworkService.port: 'x' is not a TCP port" in msg
    assert f"{env}:8: targets.main.options.rprockit.modules_dir: 'lib/modules' must be an " \
           "absolute path" in msg
    assert f"{env}:9: targets.main.options.rprockit.sudo: 'yes' is not a bool" in msg
    assert "colour: unknown setting ignored" in caplog.text


def test_overrides_replace_file_settings(tmp_path):
    t = load_target("root@h", overrides={"sudo": True, "firmware_dir": "/data/fw"})
    assert t.settings.sudo and t.firmware_dir("r") == "/data/fw"
    with pytest.raises(ProfileError, match="must be an absolute path"):
        load_target("root@h", overrides={"staging_dir": "rel"})


# -- reload planning ----------------------------------------------------------------------
def test_plan_stops_unloads_reverse_loads_in_order_then_boots():
    states = {"rpmsg_core": L, "virtio_rpmsg_bus": L, "rpmsg_char": A, "imx_rpmsg": L,
              "imx_rproc": L}
    rprocs = [RprocInfo("remoteproc0", "imx-rproc", "running", "old.elf")]
    steps = plan_reload(ORDER, SHIPPED, states, rprocs, selector=None, firmware="new.elf",
                        use_modprobe=True)
    assert steps == [
        ReloadStep("rproc-stop", "remoteproc0"),
        ReloadStep("rmmod", "imx_rproc"),
        ReloadStep("rmmod", "imx_rpmsg"),
        ReloadStep("rmmod", "virtio_rpmsg_bus"),
        ReloadStep("rmmod", "rpmsg_core"),
        ReloadStep("modprobe", "rpmsg_core"),
        ReloadStep("modprobe", "virtio_rpmsg_bus"),
        ReloadStep("modprobe", "imx_rpmsg"),
        ReloadStep("modprobe", "imx_rproc"),
        ReloadStep("rproc-firmware", "imx-rproc", "new.elf"),  # by name: the index may change
        ReloadStep("rproc-start", "imx-rproc"),
        ReloadStep("rproc-check", "imx-rproc", "running"),
    ]
    assert steps[0].describe() == "echo stop > /sys/class/remoteproc/remoteproc0/state"


def test_plan_detaches_attached_and_insmods_without_modprobe():
    states = {m: L for m in ORDER} | {"rpmsg_core": B, "virtio_rpmsg_bus": B, "rpmsg_char": B}
    rprocs = [RprocInfo("remoteproc0", "imx-rproc", "attached"),
              RprocInfo("remoteproc1", "other", "running")]
    steps = plan_reload(ORDER, SHIPPED, states, rprocs, selector="remoteproc0",
                        firmware="fw.elf", use_modprobe=False, fw_dir="/data/fw")
    assert [s.action for s in steps] == [
        "rproc-detach", "rmmod", "rmmod", "insmod", "insmod", "fw-path", "rproc-firmware",
        "rproc-start", "rproc-check"]
    assert steps[1].arg == "imx_rproc" and steps[2].arg == "imx_rpmsg"
    assert steps[3].arg == SHIPPED["imx_rpmsg"] and steps[4].arg == SHIPPED["imx_rproc"]
    assert steps[5].value == "/data/fw"
    assert steps[6].arg == "remoteproc0"  # the other processor is left alone


def test_plan_refuses_builtin_shipped_module():
    states = {m: L for m in ORDER} | {"imx_rpmsg": B}
    with pytest.raises(ReloadImpossibleError) as err:
        plan_reload(ORDER, SHIPPED, states, [], selector=None, firmware=None,
                    use_modprobe=True)
    assert "imx_rpmsg is built into the target's kernel" in str(err.value)
    assert "loadable-imx_rpmsg fix" in str(err.value)


def test_plan_without_firmware_restarts_only_what_ran():
    states = {m: A for m in ORDER}
    assert plan_reload(ORDER, SHIPPED, states, [RprocInfo("remoteproc0", "x", "offline")],
                       selector=None, firmware=None, use_modprobe=True) == [
        ReloadStep("modprobe", "imx_rpmsg"), ReloadStep("modprobe", "imx_rproc")]


def test_plan_needs_modprobe_for_foreign_loaded_module():
    states = {m: L for m in ORDER}
    with pytest.raises(ReloadImpossibleError, match="rpmsg_char is loaded"):
        plan_reload(ORDER, SHIPPED, states, [], selector=None, firmware=None,
                    use_modprobe=False)


def test_classify_modules_from_sysfs_and_modules_builtin():
    builtin = "kernel/drivers/rpmsg/rpmsg_core.ko\nkernel/drivers/rpmsg/imx-rpmsg.ko\n"
    got = classify_modules(ORDER, {"virtio_rpmsg_bus": "loaded", "rpmsg_char": "builtin",
                                   "imx_rproc": "absent"}, builtin)
    assert got == {"rpmsg_core": B, "virtio_rpmsg_bus": L, "rpmsg_char": B, "imx_rpmsg": B,
                   "imx_rproc": A}
    assert classify_modules(["x"], {}, None) == {"x": A}


# -- df parsing, quoting ------------------------------------------------------------------
def test_parse_df_gnu_and_busybox_wrapped():
    gnu = ["Filesystem     1024-blocks  Used Available Capacity Mounted on",
           "/dev/vda        20466256 9400 19000000      1% /"]
    assert parse_df(gnu) == (19000000, "/")
    busybox = ["Filesystem           1K-blocks      Used Available Use% Mounted on",
               "/dev/disk/by-partlabel/rootfs-a-very-long-name",
               "                        253871    180234     60529  75% /media/my disk"]
    assert parse_df(busybox) == (60529, "/media/my disk")
    with pytest.raises(ValueError, match="cannot parse df"):
        parse_df(["df: /x: No such file or directory"])


def test_command_line_quotes_every_argument():
    t = SSHTransport(SSHParams("h"), sudo=True)
    line = t.command_line(["sh", "-c", 'cat > "$1"', "sh", "/lib/a b;$(reboot)"])
    assert line == "sudo -n -- sh -c 'cat > \"$1\"' sh '/lib/a b;$(reboot)'"
