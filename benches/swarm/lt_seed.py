# Several libtorrent seeders in one process, one session each (own address, own peer id), all
# in seed mode (no hash check of the shared data); prints {"event": "ready"} once all seed.
import json, sys, time
import libtorrent as lt

cfg = json.loads(sys.argv[1])
sessions = []
for ip, port in cfg["listen"]:
    s = lt.session({
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(cfg["torrent"])
    atp.save_path = cfg["data"]
    atp.flags |= lt.torrent_flags.seed_mode
    sessions.append((s, s.add_torrent(atp)))
while not all(h.status().is_seeding for _, h in sessions):
    time.sleep(0.1)
print(json.dumps({"event": "ready"}), flush=True)
while True:
    time.sleep(3600)
