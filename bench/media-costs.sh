#!/usr/bin/env bash
# What each split-role media process costs in CPU, for the operator's cost model
# (operator/src/scaling.rs: PASSTHROUGH_COST, SOURCE_DECODE_COST, rendition_cost).
#
# One 30 s 720p30 H.264/AAC source (3 Mbps, keyframe every 2 s), replayed in real time (-re)
# through the same ffmpeg settings the media worker uses; prints CPU seconds (user + sys) per
# process and the cores that makes. Needs ffmpeg and GNU time (/usr/bin/time).
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 30 \
  -c:v libx264 -preset veryfast -b:v 3000k -g 60 -c:a aac -f flv src.flv

hls() { # the HLS output for these variants, in H
  H=(-f hls -hls_time 1 -hls_list_size 6 -hls_flags independent_segments+program_date_time+delete_segments
    -master_pl_name master.m3u8 -var_stream_map "$1" -hls_segment_filename "out/%v/seg_%05d.ts" "out/%v/index.m3u8")
}
measure() { # label, ffmpeg args after the input
  local label=$1; shift
  rm -rf out && mkdir out
  /usr/bin/time -f "%U %S" -o t.txt ffmpeg -hide_banner -loglevel error -y "${pre[@]}" -copyts -fflags +genpts -re \
    -f flv -i src.flv "$@" 2>/dev/null
  read -r user sys < t.txt
  awk -v l="$label" -v u="$user" -v s="$sys" 'BEGIN { printf "%-52s %6.2f CPU-s  %5.3f cores\n", l, u + s, (u + s) / 30 }'
}
thumb=(-map 0:v:0 -vf "select='isnan(prev_selected_t)+gte(t-prev_selected_t,10)',scale=-2:360" -fps_mode vfr
  -c:v mjpeg -q:v 5 -f image2 -update 1 -atomic_writing 1 out/thumb.jpg)
x264=(-c:v libx264 -preset veryfast -tune zerolatency -profile:v main -pix_fmt yuv420p
  -force_key_frames "expr:gte(t,n_forced*1)" -sc_threshold 0 -c:a aac -ac 2 -ar 48000)

hls "v:0,a:0,name:source"
pre=(-skip_frame nokey)
measure "ingest: remux + thumbnail (keyframes decoded)" -map 0:v:0 -map 0:a:0 -c copy "${H[@]}" "${thumb[@]}"
pre=()
measure "ingest: remux + thumbnail (every frame decoded)" -map 0:v:0 -map 0:a:0 -c copy "${H[@]}" "${thumb[@]}"
for r in 720:2800 480:1400 360:800; do
  h=${r%:*}; k=${r#*:}
  hls "v:0,a:0,name:${h}p"
  measure "transcode pod: ${h}p alone" -filter_complex "[0:v]scale=-2:$h[v0]" -map "[v0]" -map 0:a:0 -b:v:0 "${k}k" \
    "${x264[@]}" "${H[@]}"
done
hls "v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p"
measure "transcode pod: 720p + 480p + 360p" \
  -filter_complex "[0:v]split=3[a][b][c];[a]scale=-2:720[v0];[b]scale=-2:480[v1];[c]scale=-2:360[v2]" \
  -map "[v0]" -map 0:a:0 -map "[v1]" -map 0:a:0 -map "[v2]" -map 0:a:0 -b:v:0 2800k -b:v:1 1400k -b:v:2 800k \
  "${x264[@]}" "${H[@]}"
