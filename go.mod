module github.com/hlbridge/hlbridge

go 1.26.0
