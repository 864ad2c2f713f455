#!/usr/bin/perl
# A stand-in for UCSF Chimera (tests only): the licence-gated program cannot be downloaded by a
# test. It answers `--version`, and for `--nogui --offscreen --script "SCRIPT MODEL IMAGE WIDTH
# HEIGHT RESOLUTION"` it does what cryostack's molecule-map check asks of Chimera: reads the PDB,
# reports the atom count and the centroid and radius of gyration of the molmap density (equal
# Gaussians of sigma = resolution / (pi sqrt 2)), and writes a PNG of the scene. Only perl-base
# is used, since the image has nothing else. OFFSET (Å, along x) is 0 unless the test installer
# builds a deliberately wrong Chimera.
use strict;
use warnings;

my $VERSION = "1.17.3";
my $OFFSET = 0;

my @args = @ARGV;
if (grep { $_ eq "--version" } @args) {
    print "UCSF Chimera version: $VERSION (stand-in for cryostack's tests)\n";
    exit 0;
}
my ($script) = map { $args[$_ + 1] } grep { $args[$_] eq "--script" } 0 .. $#args;
die "chimera stand-in: only --version and --script are supported\n" unless defined $script;
my (undef, $model, $image, $width, $height, $resolution) = split ' ', $script;

open(my $pdb, "<", $model) or die "cannot open $model: $!\n";
my @atoms;
while (my $line = <$pdb>) {
    next unless $line =~ /^(ATOM  |HETATM)/;
    push @atoms, [substr($line, 30, 8) + 0, substr($line, 38, 8) + 0, substr($line, 46, 8) + 0];
}
close $pdb;
my $n = scalar @atoms;
my @centre = (0, 0, 0);
for my $a (@atoms) { $centre[$_] += $a->[$_] / $n for 0 .. 2 }
my $spread = 0;
for my $a (@atoms) { $spread += (($a->[0] - $centre[0]) ** 2 + ($a->[1] - $centre[1]) ** 2 + ($a->[2] - $centre[2]) ** 2) / $n }
my $sigma = $resolution / (4 * atan2(1, 1) * sqrt(2));
printf "cryostack-check atoms %d\n", $n;
printf "cryostack-check centroid %.4f %.4f %.4f\n", $centre[0] + $OFFSET, $centre[1], $centre[2];
printf "cryostack-check gyration %.4f\n", sqrt($spread + 3 * $sigma * $sigma);

# The scene: a disc on a white background, as an RGB PNG with stored (uncompressed) deflate blocks.
my $raw = "";
my $radius = ($width < $height ? $width : $height) / 4;
for my $y (0 .. $height - 1) {
    $raw .= "\0";
    for my $x (0 .. $width - 1) {
        my $inside = ($x - $width / 2) ** 2 + ($y - $height / 2) ** 2 < $radius ** 2;
        $raw .= $inside ? "\x28\x5a\xc8" : "\xff\xff\xff";
    }
}
my @crc_table = map { my $c = $_; $c = ($c & 1) ? (0xEDB88320 ^ ($c >> 1)) : ($c >> 1) for 1 .. 8; $c } 0 .. 255;
sub crc32 { my $c = 0xFFFFFFFF; $c = $crc_table[($c ^ ord($_)) & 0xFF] ^ ($c >> 8) for split //, $_[0]; return $c ^ 0xFFFFFFFF }
sub chunk { my ($kind, $body) = @_; return pack("N", length $body) . $kind . $body . pack("N", crc32($kind . $body)) }
my ($s1, $s2) = (1, 0);
for my $byte (unpack "C*", $raw) { $s1 = ($s1 + $byte) % 65521; $s2 = ($s2 + $s1) % 65521 }
my $deflate = "\x78\x01";
for (my $at = 0; $at < length $raw; $at += 65535) {
    my $block = substr($raw, $at, 65535);
    my $final = $at + 65535 >= length $raw ? 1 : 0;
    $deflate .= pack("C v v", $final, length $block, ~(length $block) & 0xFFFF) . $block;
}
$deflate .= pack("N", ($s2 << 16) | $s1);
open(my $png, ">:raw", $image) or die "cannot write $image: $!\n";
print $png "\x89PNG\r\n\x1a\n", chunk("IHDR", pack("N N C C C C C", $width, $height, 8, 2, 0, 0, 0)),
    chunk("IDAT", $deflate), chunk("IEND", "");
close $png;
print "cryostack-check image $image\n";
