"""The small English corpus the tiny tokenizer is trained on.

Kept in the repo (not downloaded) so the tokenizer is rebuilt byte for byte anywhere. It covers what
the demo and tests render: digit captions, directions, box strings, chat role names and the default
system prompt, plus enough everyday English that arbitrary test sentences stay a few tokens per word.
"""

TINY_CORPUS = """\
system
You are a helpful assistant.
user
Describe the image.
assistant
A handwritten digit.
system user assistant Picture 1: Video 1: Picture 2: Video 2: Picture 3:
a handwritten digit. a handwritten digit 0. a handwritten digit 1. a handwritten digit 2.
a handwritten digit 3. a handwritten digit 4. a handwritten digit 5. a handwritten digit 6.
a handwritten digit 7. a handwritten digit 8. a handwritten digit 9.
This is a handwritten digit. The image shows a handwritten digit on a dark background.
The digit is in the top left corner. The digit is in the top right corner.
The digit is in the bottom left corner. The digit is in the bottom right corner.
The digit moves left. The digit moves right. The digit moves up. The digit moves down.
It moves to the left, then to the right, then up and down.
left right up down top bottom middle center centre above below next to near far inside outside.
Where is the digit? What digit is this? How many digits are there? Which way does it move?
Describe the image. Describe the video. What is in the picture? What happens in the video?
Answer with a number. Answer with a word. Answer the question.
The box is (12,34),(560,789). The box is (0,0),(999,999). Boxes: (100,200),(300,400).
Coordinates are written as (x1,y1),(x2,y2) with values from 0 to 999.
0 1 2 3 4 5 6 7 8 9 10 11 12 20 25 50 100 123 250 500 999 1000 2024 2025 2026
one two three four five six seven eight nine ten first second third last zero
Yes. No. Maybe. OK. Sure, here it is: Thank you! Please look at the image; then answer.
Punctuation: , . ; : ! ? ' " ( ) [ ] { } - _ / \\ * + = < > # @ & % $ ~ ` | ^
the red car the blue car a green tree a yellow house a white cat a black dog a small bird
a man a woman a child a person people a group of people standing sitting walking running
The red car is parked on the street next to a tall building.
A white cat sits on a wooden table near the window.
A black dog runs across the green grass in the park.
Two people are walking along the beach at sunset.
A plate of food with rice, vegetables and chicken.
A street sign says STOP at the corner of the road.
The sky is blue and there are a few white clouds.
A boy holds a red ball in his hands and smiles.
A woman reads a book under a large tree.
An old bicycle leans against a brick wall.
There is a cup of coffee and a laptop on the desk.
The train arrives at the station in the morning.
Text in the image reads "Hello World" in large letters.
The chart shows sales growing from 2020 to 2025.
A document with a title, a table and two paragraphs of text.
Click the button at the top of the screen to open the menu.
The video shows a person cooking dinner in a kitchen.
First, the man opens the door; then he walks into the room.
Compare the two pictures: the first one is brighter than the second.
What color is the car? The car is red. What is the cat doing? The cat is sleeping.
How old is the building? It looks very old. Is it raining? No, it is sunny.
Count the objects: there are three apples and two oranges.
I think the answer is 7 because the digit has a straight line and a bar on top.
the of and to in is that it for on with as was at by be this are from or an have not
they which you were her she he his their has had but we all can there been if will would
more when who what some out about so them into only other time could these two may then do
any like my now over such our man me even most made after also did many before must through
back years where much your way well down should because each just those how too little state
good very make world still own see men work long get here between both life being under never
day same another know while last might us great old year off come since against go came right
used take three small large new high different every found home water light color colour shape
green red blue yellow white black brown orange purple pink gray grey dark bright round square
line circle triangle number letter word text image video frame picture photo scene object box
"""
