#!/bin/sh
# Stand-in for UCSF's chimera-<version>-linux_x86_64_osmesa.bin (tests only): like the real
# installer it asks for the install directory and whether to add desktop icons, then unpacks the
# zip archive appended to this script.
echo "UCSF Chimera installer (stand-in for cryostack's tests)"
printf 'Enter install location: '
read -r target || { echo "no answer for the install location" >&2; exit 1; }
[ -n "$target" ] || { echo "an install location is required" >&2; exit 1; }
printf 'Install desktop menu and icon? (yes/no) '
read -r icons || { echo "no answer about desktop icons" >&2; exit 1; }
case "$icons" in
    yes|no) ;;
    *) echo "answer yes or no" >&2; exit 1 ;;
esac
mkdir -p "$target"
# unzip warns (exit 1) about the script in front of the archive; 2 and above are errors.
unzip -qo "$0" -d "$target"
[ $? -le 1 ] || exit 1
[ "$icons" = no ] || echo "(a desktop icon would be installed here)"
echo "Chimera installed in $target"
exit 0
