# bench/compare.gp: the plot of bench/compare.sh's table (writes/s per workload and
# system, log scale). gnuplot -e "data='compare.dat'; out='compare.png'" compare.gp
set terminal pngcairo size 1100,560 font ",10"
set output out
set title "SET throughput, 3-byte values, fsync on (one run of bench/compare.sh)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [100:*]
set ylabel "writes/s (log scale)"
set format y "%.0f"
set grid ytics
set key top left
set xtics nomirror
plot for [col = 2:6] data using col:xtic(1) title columnheader(col)
