#!/usr/bin/python3
"""A WHIP publisher and WHEP viewer built on aiortc (Debian's python3-aiortc 1.4), for tests.

aiortc offers audio and video in one BUNDLE group but gives every m-section its own ICE
credentials and candidates, unlike browsers; the gateway must use the BUNDLE-tag section's.

  aiortc_client.py offer publish|view          print an offer (nothing is sent)
  aiortc_client.py publish URL VIDEO AUDIO SECONDS
      WHIP: send VIDEO's H.264 (an MPEG-TS file, packets as they are) and AUDIO (re-encoded to
      Opus) for SECONDS, then DELETE
  aiortc_client.py view URL SECONDS             WHEP: receive audio + video, count decoded frames

Results are one JSON object on stdout. Only 127.0.0.1 is used: no STUN server, and ICE host
candidates are gathered on the loopback address alone.
"""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

# aioice skips loopback addresses when it enumerates interfaces; tests stay on 127.0.0.1.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def new_peer():
    # iceServers=[]: aiortc's default is Google's public STUN server.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def prefer_h264(transceiver):
    codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    transceiver.setCodecPreferences(codecs)


def http(method, url, body=None, content_type=None):
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


async def negotiate(pc, url):
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    status, headers, body = await asyncio.get_running_loop().run_in_executor(
        None, lambda: http("POST", url, offer.encode(), "application/sdp")
    )
    if status != 201:
        raise RuntimeError(f"POST {url}: {status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    location = headers.get("Location") or headers.get("location")
    return offer, body, headers, urljoin(url, location) if location else None


async def wait_connected(pc, timeout):
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def outbound_packets(pc):
    counts = {}
    for transceiver in pc.getTransceivers():
        stats = await transceiver.sender.getStats()
        for s in stats.values():
            if s.type == "outbound-rtp":
                counts[transceiver.kind] = counts.get(transceiver.kind, 0) + s.packetsSent
    return counts


async def publish(url, video_file, audio_file, seconds):
    pc = new_peer()
    # The H.264 file's packets go out as they are (its GOP sets the keyframes: aiortc 1.4's own
    # H.264 encoder ignores keyframe requests); the audio is decoded and encoded to Opus by aiortc.
    video = MediaPlayer(video_file, decode=False)
    audio = MediaPlayer(audio_file)
    pc.addTransceiver(audio.audio, direction="sendonly")
    prefer_h264(pc.addTransceiver(video.video, direction="sendonly"))
    result = {"connected": False}
    resource = None
    try:
        offer, answer, headers, resource = await negotiate(pc, url)
        result.update(offer=offer, answer=answer, playbackUrl=headers.get("Livepeer-Playback-URL"))
        result["connected"] = await wait_connected(pc, 15)
        if result["connected"]:
            await asyncio.sleep(seconds)
        result["packetsSent"] = await outbound_packets(pc)
    finally:
        if resource:
            result["deleteStatus"] = http("DELETE", resource)[0]
        await pc.close()
        audio.audio.stop()
        video.video.stop()
    return result


async def count_frames(track, counts):
    try:
        while True:
            await track.recv()
            counts[track.kind] += 1
    except MediaStreamError:
        pass


async def view(url, seconds):
    pc = new_peer()
    pc.addTransceiver("audio", direction="recvonly")
    prefer_h264(pc.addTransceiver("video", direction="recvonly"))
    counts = {"audio": 0, "video": 0}
    tasks = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(count_frames(track, counts))))
    result = {"connected": False}
    resource = None
    try:
        offer, answer, _, resource = await negotiate(pc, url)
        result.update(offer=offer, answer=answer)
        result["connected"] = await wait_connected(pc, 15)
        if result["connected"]:
            await asyncio.sleep(seconds)
    finally:
        result["videoFrames"] = counts["video"]
        result["audioFrames"] = counts["audio"]
        if resource:
            result["deleteStatus"] = http("DELETE", resource)[0]
        await pc.close()
        for task in tasks:
            task.cancel()
    return result


async def offer(purpose):
    pc = new_peer()
    direction = "sendonly" if purpose == "publish" else "recvonly"
    pc.addTransceiver("audio", direction=direction)
    prefer_h264(pc.addTransceiver("video", direction=direction))
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "offer" and len(argv) == 3:
        sys.stdout.write(asyncio.run(offer(argv[2])))
    elif command == "publish" and len(argv) == 6:
        print(json.dumps(asyncio.run(publish(argv[2], argv[3], argv[4], float(argv[5])))))
    elif command == "view" and len(argv) == 4:
        print(json.dumps(asyncio.run(view(argv[2], float(argv[3])))))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
