fn main() {
    let s = netns_runtime::sandbox::enter().expect("sandbox");
    println!("mode {:?} pid {}", s.mode, std::process::id());
    let home = netns_runtime::netns::current().unwrap();
    let t = std::thread::spawn(move || {
        let ns = netns_runtime::netns::Netns::create_and_enter("smoke1").unwrap();
        netns_runtime::netns::write_sysctl("net/ipv4/ip_forward", "1").unwrap();
        netns_runtime::netns::enter(std::os::fd::AsFd::as_fd(&home)).unwrap();
        ns
    });
    let ns = t.join().unwrap();
    for cmd in [
        "ip netns list",
        "ip netns exec smoke1 ip link",
        "ip netns exec smoke1 sysctl net.ipv4.ip_forward",
        "sysctl net.ipv4.ip_forward",
        "ls /run/netns",
    ] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .unwrap();
        println!(
            "$ {cmd}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ns.remove().unwrap();
}
