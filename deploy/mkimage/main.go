// Command mkimage builds mcpedge's container image without a container
// daemon (internal/ociimage), from binaries built beforehand:
//
//	mkimage rootfs DIR
//	    Write the image's base files under DIR (the Dockerfile's build
//	    stage copies them into a scratch image).
//	mkimage build --version V [--revision R] [--source URL] [--created TIME]
//	        [--ca-bundle FILE] [--layout DIR] [--tarball FILE --tag REF]
//	        linux/amd64=PATH [linux/arm64=PATH linux/arm/v7=PATH …]
//	    Assemble one image per binary: an OCI image layout of all of them
//	    (--layout), and/or a `docker load` tarball of the first (--tarball).
//
// --created defaults to $SOURCE_DATE_EPOCH, else the Unix epoch, so that
// the same binaries give the same digests.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mcpedge/mcpedge/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: mkimage rootfs DIR | mkimage build [flags] os/arch[/variant]=PATH…")
	}
	fs := flag.NewFlagSet("mkimage "+args[0], flag.ContinueOnError)
	ca := fs.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM `file` of trusted roots to put in the image")
	switch args[0] {
	case "rootfs":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: mkimage rootfs [--ca-bundle FILE] DIR")
		}
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return err
		}
		return ociimage.WriteRootFS(fs.Arg(0), pem)
	case "build":
		var m ociimage.Metadata
		fs.StringVar(&m.Version, "version", "", "release `version` (label org.opencontainers.image.version)")
		fs.StringVar(&m.Revision, "revision", "", "source `revision` (a git commit)")
		fs.StringVar(&m.Source, "source", "", "repository `URL`")
		created := fs.String("created", "", "build `time`, RFC 3339 (default $SOURCE_DATE_EPOCH, else the Unix epoch)")
		layoutDir := fs.String("layout", "", "write an OCI image layout of every platform to `DIR`")
		tarFile := fs.String("tarball", "", "write a `docker load` tarball of the first platform to `FILE`")
		tag := fs.String("tag", "mcpedge:latest", "image `reference` of the tarball")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if m.Version == "" {
			return errors.New("--version is required")
		}
		if *layoutDir == "" && *tarFile == "" {
			return errors.New("nothing to write: give --layout and/or --tarball")
		}
		t, err := buildTime(*created)
		if err != nil {
			return err
		}
		m.Created = t
		var bins []ociimage.Binary
		for _, a := range fs.Args() {
			b, err := ociimage.ParseBinary(a)
			if err != nil {
				return err
			}
			bins = append(bins, b)
		}
		if len(bins) == 0 {
			return errors.New("no binary: give os/arch[/variant]=PATH")
		}
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return err
		}
		if *tarFile != "" {
			img, err := ociimage.Image(bins[0], pem, m)
			if err != nil {
				return err
			}
			if err := ociimage.WriteTarball(*tarFile, *tag, img); err != nil {
				return err
			}
		}
		if *layoutDir != "" {
			idx, err := ociimage.Index(bins, pem, m)
			if err != nil {
				return err
			}
			return ociimage.WriteLayout(*layoutDir, idx)
		}
		return nil
	default:
		return fmt.Errorf("unknown command %q (rootfs, build)", args[0])
	}
}

func buildTime(s string) (time.Time, error) {
	if s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("--created: %w", err)
		}
		return t, nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}
