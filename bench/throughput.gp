# Throughput per contender: median images/s over the rounds, bars from the
# slowest to the fastest run. Called by bench/run.sh with dat and out set.
set terminal pngcairo size 1200,640 font "DejaVu Sans,10"
set output out
set title "Standard rendition set of the wallpaper corpus: throughput (same cores; median, min–max)"
set ylabel "images / s"
set yrange [0:*]
set grid ytics
set style fill solid 0.75 border -1
set boxwidth 0.6
set xtics rotate by -25 left nomirror
set key off
set bmargin 9
set rmargin 12
plot dat using 1:3:xtic(2) with boxes lc rgb "#4a7ab5", \
     dat using 1:3:4:5 with yerrorbars lc rgb "black" pt 0, \
     dat using 1:3:(sprintf("%.2f", $3)) with labels offset 0,1.2
