# A one-shot libtorrent download: exits once complete, printing what libtorrent counts as
# wasted (redundant and failed-hash bytes).
import json, sys, time
import libtorrent as lt

cfg = json.loads(sys.argv[1])
s = lt.session({
    "listen_interfaces": "%s:%d" % (cfg["ip"], cfg["port"]),
    "outgoing_interfaces": cfg["ip"],
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_incoming_utp": False,
    "enable_outgoing_utp": False,
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(cfg["torrent"])
atp.save_path = cfg["out"]
h = s.add_torrent(atp)
while not h.status().is_seeding:
    time.sleep(0.02)
st = h.status()
print(json.dumps({"event": "done", "redundant": st.total_redundant_bytes,
                  "failed": st.total_failed_bytes}), flush=True)
