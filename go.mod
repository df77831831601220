module github.com/mimmigrate/mimmigrate

go 1.26.8

require github.com/okeuday/erlang_go/v2 v2.0.7

require github.com/alecthomas/kong v1.12.1 // indirect
