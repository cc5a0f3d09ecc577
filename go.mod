module github.com/posixshm/shm

go 1.26
