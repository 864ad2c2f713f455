#!/bin/sh
# relion/5.0.1/oneapi-cpu-avx512: rendered by cryostack. Its programs are compiled for AVX-512; on a CPU
# without it they would die of SIGILL somewhere inside. Each program's name on PATH leads here
# first: a CPU without the flags gets one line and exit code 2, any other the program itself.
flags=" $(sed -n '/^flags[[:space:]]*:/{s/^[^:]*://p;q}' /proc/cpuinfo 2>/dev/null) "
missing=""
for flag in 'avx512f' 'avx512cd' 'avx512bw' 'avx512dq' 'avx512vl'; do
    case "$flags" in *" $flag "*) ;; *) missing="$missing $flag" ;; esac
done
if [ -n "$missing" ]; then
    model=$(sed -n '/^model name[[:space:]]*:/{s/^[^:]*:[[:space:]]*//p;q}' /proc/cpuinfo 2>/dev/null)
    printf '%s: %s needs %s, which this CPU (%s) lacks (no%s); run it on %s\n' "${0##*/}" 'relion/5.0.1/oneapi-cpu-avx512' \
        'AVX-512' "${model:-model unknown}" "$missing" 'an instance family with it: c5, c5n, c6i, c7i, g4dn, m6i, m7i, p3dn, p4d, t3' >&2
    exit 2
fi
exec '/opt/relion'/bin/"${0##*/}" "$@"
