# libtorrent peers of the swarm benchmark, each a session on a loopback address of its own with
# no discovery and no uTP (the benchmark's proxies carry TCP only).
#   seed CFG   several seeders in one process, one session each (own address, own peer id), in
#              seed mode (no hash check of the shared data); prints {"event": "ready"} once all seed
#   leech CFG  a one-shot download; exits once complete, printing what libtorrent counts as
#              wasted (redundant and failed-hash bytes)
import json, sys, time
import libtorrent as lt


def session(ip, port, **more):
    settings = {
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
    }
    settings.update(more)
    return lt.session(settings)


def add(s, torrent, save, flags=0):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save
    atp.flags |= flags
    return s.add_torrent(atp)


mode, cfg = sys.argv[1], json.loads(sys.argv[2])
if mode == "seed":
    peers = []
    for ip, port in cfg["listen"]:
        s = session(ip, port, allow_multiple_connections_per_ip=True)
        peers.append((s, add(s, cfg["torrent"], cfg["data"], lt.torrent_flags.seed_mode)))
    while not all(h.status().is_seeding for _, h in peers):
        time.sleep(0.1)
    print(json.dumps({"event": "ready"}), flush=True)
    while True:
        time.sleep(3600)
else:
    s = session(cfg["ip"], cfg["port"])
    h = add(s, cfg["torrent"], cfg["out"])
    while not h.status().is_seeding:
        time.sleep(0.02)
    st = h.status()
    print(json.dumps({"event": "done", "redundant": st.total_redundant_bytes,
                      "failed": st.total_failed_bytes}), flush=True)
