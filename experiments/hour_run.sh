#!/usr/bin/env bash
# One hour of video (57,600 frames at 16 fps), static sink, default metrics, with one SIGKILL and a resume in
# the middle: the run is killed at a random chunk between frames KILL_MIN and KILL_MAX, then continued with
# resume=true in the same run directory. Results (not the video) are copied to results/bench/hour_run/.
#   bash experiments/hour_run.sh [RUN_DIR]
set -euo pipefail
RUN_DIR=${1:-outputs/hour_run}
FRAMES=${FRAMES:-57600}
KILL_MIN=${KILL_MIN:-4000}
KILL_MAX=${KILL_MAX:-8000}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread: bitwise-equal frames need the same thread count
KILL_AT=$(( KILL_MIN + RANDOM % (KILL_MAX - KILL_MIN) ))
ARGS=(run.py num_frames=$FRAMES sink=static hydra.run.dir=$RUN_DIR)
echo "$(date -u +%FT%TZ) start; SIGKILL once the video passes frame $KILL_AT"
"$PY" "${ARGS[@]}" > "$RUN_DIR.first.log" 2>&1 &
PID=$!
until [ -f "$RUN_DIR/video/playlist.m3u" ] && \
      "$PY" - "$RUN_DIR" "$KILL_AT" <<'PYEOF'
import sys
from pathlib import Path
segments = sorted(Path(sys.argv[1], "video").glob("seg_*.mp4"))
sys.exit(0 if segments and int(segments[-1].stem[4:]) >= int(sys.argv[2]) else 1)
PYEOF
do
  kill -0 $PID 2>/dev/null || { echo "run ended before the kill point"; exit 1; }
  sleep 20
done
sleep $(( RANDOM % 20 ))  # a random chunk after that cut, not the cut itself
kill -9 $PID
echo "$(date -u +%FT%TZ) SIGKILL sent; last segments: $(ls "$RUN_DIR/video" | tail -2 | tr '\n' ' ')"
wait $PID || true
"$PY" "${ARGS[@]}" resume=true > "$RUN_DIR.resume.log" 2>&1
echo "$(date -u +%FT%TZ) done"
