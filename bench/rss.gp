# One worker through 10x the corpus: RSS sampled from /proc (left axis) and
# records committed (right axis). Called by bench/run.sh with rss, committed
# and out set.
set terminal pngcairo size 1100,520 font "DejaVu Sans,10"
set output out
set title sprintf("imgsink worker: resident memory over a run of %dx the corpus", repeat)
set xlabel "seconds since the worker started"
set ylabel "VmRSS (MiB)"
set y2label "records committed"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set grid
set key left top
plot rss using 1:2 with lines lw 2 lc rgb "#b5482a" title "RSS (MiB)", \
     committed using 1:2 axes x1y2 with steps lw 1 lc rgb "#4a7ab5" title "records committed"
