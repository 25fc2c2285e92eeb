#!/usr/bin/env bash
# Always-on offline video summarizer (Raspberry Pi): runs `edgekit summarize` on a camera and keeps it
# running. Settings come from the environment (the systemd unit reads /etc/default/edgekit-summarizer):
#   EDGEKIT_BUNDLE          bundle folder (required)
#   EDGEKIT_SOURCE          camera index, video file, rtsp:// URL or image folder (default 0)
#   EDGEKIT_OUT             timeline folder (default /var/lib/edgekit-summarizer); runs are appended
#   EDGEKIT_FPS (1)  EDGEKIT_SIZE (224)  EDGEKIT_SEGMENT (10s)  EDGEKIT_SUMMARY_EVERY (5m)  EDGEKIT_THREADS (4)
#   EDGEKIT_RECONNECT (5)   reconnect tries inside one run when the camera drops (back-off from 1 s)
#   EDGEKIT_CAMERA          camera id on every record and MQTT topic (default: the host name)
#   EDGEKIT_KEEP (30d)      delete segments and thumbnails older than this; empty keeps everything
#   EDGEKIT_MAX_STORE       and the oldest while the store + thumbnails exceed this size (e.g. 4GB)
#   EDGEKIT_MQTT            broker, mqtt://HOST:1883/PREFIX or mqtts://HOST:8883/PREFIX (empty: no MQTT)
#   EDGEKIT_MQTT_USER, EDGEKIT_MQTT_PASSWORD   read by edgekit itself (kept off the command line)
#   EDGEKIT_MQTT_CA, EDGEKIT_MQTT_CERT, EDGEKIT_MQTT_KEY   PEM files for TLS
#   EDGEKIT_MAX_RESTARTS (0 = forever)  EDGEKIT_RESTART_DELAY (10 s, doubled per restart up to 300 s)
#   EDGEKIT_PYTHON (python3)
# `edgekit summarize` exits 0 when the source ended, 2 when a setting is wrong (not restarted: fix it),
# 3 when the camera/stream is lost (restarted after a delay), 130 when stopped. SIGTERM/SIGINT to this
# script stop the summarizer cleanly (it writes its timeline and summary) and end the script with 0.
set -u

bundle=${EDGEKIT_BUNDLE:?set EDGEKIT_BUNDLE to the bundle folder}
source_=${EDGEKIT_SOURCE:-0}
out=${EDGEKIT_OUT:-/var/lib/edgekit-summarizer}
python=${EDGEKIT_PYTHON:-python3}
max_restarts=${EDGEKIT_MAX_RESTARTS:-0}
delay=${EDGEKIT_RESTART_DELAY:-10}

log() { echo "edgekit-summarizer: $*" >&2; }

child=""
stopping=0
stop() {
    stopping=1
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap stop TERM INT

# the optional settings, each passed only when set
extra=()
add() { if [ -n "$2" ]; then extra+=("$1" "$2"); fi; }
add --camera "${EDGEKIT_CAMERA:-}"
add --keep "${EDGEKIT_KEEP-30d}"
add --max-store "${EDGEKIT_MAX_STORE:-}"
add --mqtt "${EDGEKIT_MQTT:-}"
add --mqtt-ca "${EDGEKIT_MQTT_CA:-}"
add --mqtt-cert "${EDGEKIT_MQTT_CERT:-}"
add --mqtt-key "${EDGEKIT_MQTT_KEY:-}"

restarts=0
while :; do
    PYTHONUNBUFFERED=1 "$python" -m edgekit summarize "$bundle" "$source_" -o "$out" --append --live \
        --fps "${EDGEKIT_FPS:-1}" --size "${EDGEKIT_SIZE:-224}" --segment "${EDGEKIT_SEGMENT:-10s}" \
        --summary-every "${EDGEKIT_SUMMARY_EVERY:-5m}" --threads "${EDGEKIT_THREADS:-4}" \
        --reconnect "${EDGEKIT_RECONNECT:-5}" ${extra[@]+"${extra[@]}"} &
    child=$!
    wait "$child"
    rc=$?
    while kill -0 "$child" 2>/dev/null; do  # a trapped signal interrupts wait: wait for the real status
        wait "$child"
        rc=$?
    done
    child=""
    if [ "$stopping" = 1 ]; then
        log "stopped (summarizer exit $rc)"
        exit 0
    fi
    case $rc in
        0) log "the source ended"; exit 0 ;;
        2) log "the summarizer refused its settings (exit 2): not restarting"; exit 2 ;;
        130 | 143) log "the summarizer was stopped"; exit 0 ;;
    esac
    restarts=$((restarts + 1))
    if [ "$max_restarts" -gt 0 ] && [ "$restarts" -gt "$max_restarts" ]; then
        log "giving up after $max_restarts restarts (last exit $rc)"
        exit "$rc"
    fi
    log "summarizer exited with $rc: restart $restarts in ${delay} s"
    sleep "$delay" &
    wait $! 2>/dev/null
    if [ "$stopping" = 1 ]; then log "stopped"; exit 0; fi
    delay=$((delay * 2 > 300 ? 300 : delay * 2))
done
