#!/bin/sh
# relion/5.0.1/oneapi-cpu-avx512: rendered by cryostack. Its programs are compiled for AVX-512; on a CPU
# without it they would die of SIGILL somewhere inside. Each program's name on PATH leads here
# first: a CPU without the flags gets one line and exit code 2, any other the program itself.
# The shell's own read (no sed, no fork) keeps the cost of a start to 1 to 2 ms (sed took 5).
model="" flags=""
if [ -r /proc/cpuinfo ]; then
    while IFS= read -r line; do
        case $line in
            "model name"*:*) model=${line#*:} ;;
            flags*:*) flags=" ${line#*:} "; break ;;
        esac
    done </proc/cpuinfo
fi
# No flags line (no /proc, not an x86 kernel's format): the guard cannot tell, so it does not refuse.
missing=""
if [ -n "$flags" ]; then
    for flag in 'avx512f' 'avx512cd' 'avx512bw' 'avx512dq' 'avx512vl'; do
        case $flags in *" $flag "*) ;; *) missing="$missing $flag" ;; esac
    done
fi
if [ -n "$missing" ]; then
    model=${model# }
    printf '%s: %s needs %s (%s), which this CPU lacks (%s: no%s); run it on %s\n' "${0##*/}" \
        'relion/5.0.1/oneapi-cpu-avx512' 'AVX-512' 'avx512f avx512cd avx512bw avx512dq avx512vl' \
        "${model:-model unknown}" "$missing" 'an instance family with AVX-512: c5, c5n, c6i, c7i, g4dn, m6i, m7i, p3dn, p4d, t3' >&2
    exit 2
fi
exec '/opt/relion'/bin/"${0##*/}" "$@"
