module github.com/mimmigrate/mimmigrate

go 1.26.8

require github.com/okeuday/erlang_go/v2 v2.0.7

require (
	github.com/alecthomas/kong v1.12.1 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/schollz/progressbar/v3 v3.19.1 // indirect
	golang.org/x/sys v0.46.0 // indirect
	golang.org/x/term v0.44.0 // indirect
)
